"""Learners and what they share: the bootstrapped actor (behaviour cloning from scripted
episodes) and the text encoders for critics and embedded observations. Needs the ``lm`` extra."""

"""The terminal UI: step through episodes, take a seat in one, and browse recordings.

`feedbackgym tui` opens the home screen; `feedbackgym play SCENARIO --as ROLE` seats a person
straight away; `feedbackgym replay PATH` opens the replay browser on a terminal. The engine never
touches a widget: agents run in worker threads, and a person's seat is an agent that waits for
the UI to answer (`feedbackgym.tui.seat`).
"""

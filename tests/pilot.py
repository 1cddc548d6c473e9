"""What the terminal UI's Pilot tests share: waiting for the app to reach a state."""

import asyncio


async def until(pilot, condition, timeout=5.0):
    """Let the app run until ``condition()`` holds (worker threads report through messages)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the UI"
        await pilot.pause(0.01)

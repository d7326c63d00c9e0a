"""Next steps: the runbook's next actions as buttons, and the click that runs one.

What other capabilities use: `next_step_blocks` (the buttons for a service's steps, under a /latency breach, a down
service in /health, an incident's root) and `run_button` (one button that runs a command line, e.g. a reply
offering `/restart ai-assistant`). Both render action_id `next_step.run…` with the command line as value; the
click runs it through the registry exactly as if typed (handlers/next_steps/action.py).
"""

from handlers.next_steps.blocks import LINK_ACTION, RUN_ACTION, next_step_blocks, run_button

__all__ = ["LINK_ACTION", "RUN_ACTION", "next_step_blocks", "run_button"]

"""The Textual front end: it reads the store (snapshots) and asks the agent's front desk (agent/actions.py) to act.

Layering: `nightlab.tui` imports `nightlab.agent` and `nightlab.sandbox`, never the other way round. Everything that
can block (the engine loop, git, SQLite, file tails, $EDITOR) runs in thread workers that talk to the UI only by
posting messages, so a slow disk or a busy engine never freezes a key press.
"""

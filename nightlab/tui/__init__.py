"""The Textual front end: it asks the agent's front desk what to show (agent/views.py: snapshots, logs, GPUs) and
to act (agent/actions.py).

Layering: `nightlab.tui` imports only the front desk and the vocabulary of `nightlab.agent` (states, records, goal,
config), never the store, a lock, git or `nightlab.sandbox` (tests/test_layers.py holds it to that). Everything that
can block (the engine loop, git, SQLite, file tails, $EDITOR) runs in thread workers that talk to the UI only by
posting messages, so a slow disk or a busy engine never freezes a key press.
"""

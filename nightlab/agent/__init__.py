"""The agent: UI-agnostic (never imports textual or nightlab.tui), built in floors that import downward only —
vocabulary (states, goal, paths, config, proposal), materials (store, workspace, edits, memory, metrics, diagnose,
reward), policies, rooms (ledger, analysis, launcher, costs, policy_view, status), the engine (the state machine)
and the front desk (actions: every user action). README.md, "Architecture", walks one experiment through them."""

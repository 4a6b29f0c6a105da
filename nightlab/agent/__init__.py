"""The agent core: config, store, workspace, engine, metrics, policies. Never imports textual or nightlab.tui."""

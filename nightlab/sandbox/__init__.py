"""Running untrusted training code: the detached job wrapper, confinement, slots and watching.

Imports nothing of nightlab.agent and nothing of nightlab.tui.
"""

"""The flow runtime's queue side (docs/flows.md): ``worker`` walks enrolments step by step,
``sending`` carries out a send node, ``timers`` wakes waiting enrolments on time."""

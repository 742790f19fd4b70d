"""The `dualnova` command for people: chat with both models, bring the stack up."""

"""The CLI's commands, one small module each; :mod:`aft_fast.cli` assembles them."""

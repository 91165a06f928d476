"""The logic of the interactive panels, as plain objects the widgets wire to controls and the tests call headless."""

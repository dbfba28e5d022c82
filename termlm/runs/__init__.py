"""Run folders read back without torch: their state, figures and curves (`termlm runs`)."""

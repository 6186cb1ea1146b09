"""Estimators: each turns a summary (a curve, a slope curve, group curves) into its one result type, knowing nothing of where the summary came from."""

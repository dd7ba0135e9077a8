"""The operator's dashboard: one page (static/), fed over SSE with `DashboardView`s."""

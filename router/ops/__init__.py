"""Operating the router: metrics, the status page, reload, the serving processes, the demo."""

"""The HTTP side of the service: routes per area, middleware, and how errors are rendered."""

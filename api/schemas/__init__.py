"""What the API answers, as pydantic models: one module per resource (as in FastAPI's
full-stack project template), so that the OpenAPI document says what comes back.

The request bodies stay beside their routes; these are the answers. Every model
allows fields it does not name (:class:`Schema`): the core's records grow, and a
field the document does not list yet must not vanish from the answer. Routes with
small answers declare ``response_model=`` (validated, with ``exclude_unset`` so
that nothing is added); the big ones (GeoJSON collections, batch lookups, event lists)
return a pre-built response and only document the model, so that nothing validates
100,000 results again.
"""

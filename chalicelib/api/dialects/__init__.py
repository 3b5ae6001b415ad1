"""The seed APIs: other products' HTTP interfaces, served over Herald's own campaigns.

Each dialect is a translation and nothing more: it maps the seed's paths, parameter and
field names, enum values and envelopes onto the same use cases (``chalicelib.services``)
the native ``/v1`` routes call, so a campaign made through a dialect is a Herald campaign
(visible, editable and sent like any other) and no rule lives twice. Authentication is the
native one (Bearer API keys; the tenant comes from the key). docs/api-seed-*.md describe
each dialect and the decisions where a seed leaves a choice open.
"""

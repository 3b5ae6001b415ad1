"""Herald's AWS stack: ``python -m infra.render`` turns chalicelib.resources into CloudFormation.

Chalice packages the functions and the REST API; everything else (table, queues, topics, bus,
schedule group, SES configuration set, IAM, dashboard, alarms) is a merge template generated
here from the same ``herald_resources`` the local stack provisions, so the two cannot drift.
"""

"""The town's disaster dashboard (issue 18): a web page served at ``/dashboard`` that is a
client of the NGSI-LD API like any app, and the server-sent-events stream that pushes it the
changes the subscription engine matches, through an in-process sink."""

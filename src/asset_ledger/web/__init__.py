"""Server-rendered pages of the ledger (Jinja2), served by the same app as the JSON API.

Pages call the core exactly as the API does; the only JavaScript is the project's own ``static/app.js``
(live run progress, confirmations). No page ever renders a secret.
"""

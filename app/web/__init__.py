"""The HTTP side: the webhook endpoint (verify, append to the inbox, 202), health and the job page.
No GitHub call and no interpretation happen here."""

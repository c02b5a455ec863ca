"""The HTTP side: the webhook endpoint (verify, append to the inbox, 202), health, and the job views
(the operator's list, a job's page and its live stream). No GitHub call and no interpretation happen here."""

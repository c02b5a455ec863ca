"""The `review` worker: the reviewer's prompt and report, the diff lines GitHub accepts comments on,
publishing the review, and the flow the run stage follows for it (flow.py)."""

"""Issues, issue comments, labels and reactions."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .rest import ApiRequest, ApiResponse, Handler, not_found, paginate

if TYPE_CHECKING:
    from .state import FakeGitHub

DOC_ISSUE = "https://docs.github.com/rest/issues/issues#get-an-issue"
DOC_COMMENT = "https://docs.github.com/rest/issues/comments#update-an-issue-comment"
DOC_LABEL = "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue"


def _issue(fake: "FakeGitHub", req: ApiRequest) -> dict[str, Any] | None:
    assert req.repo is not None
    return fake._issue_index.get((req.repo.full_name.lower(), req.int_param("issue_number")))


def _comment(fake: "FakeGitHub", req: ApiRequest) -> dict[str, Any] | None:
    assert req.repo is not None
    found = fake._comment_index.get(req.int_param("comment_id"))
    if found is None or found[0] != req.repo.full_name.lower():
        return None
    return found[2]


async def get_issue(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    return ApiResponse(200, copy.deepcopy(issue)) if issue else not_found(DOC_ISSUE)


async def list_comments(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    if issue is None:
        return not_found(DOC_ISSUE)
    assert req.repo is not None
    comments = fake.comments_on(req.repo.full_name, issue["number"])
    since = req.query.get("since")
    if since:
        comments = [c for c in comments if c["updated_at"] >= since]
    return paginate(req, [copy.deepcopy(c) for c in comments])


async def create_comment(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    if issue is None:
        return not_found(DOC_ISSUE)
    assert req.repo is not None and req.actor is not None
    if issue["locked"]:
        return ApiResponse(403, {"message": "Unable to create comment because issue is locked.",
                                 "documentation_url": "https://docs.github.com/articles/locking-conversations/"})
    comment = fake.create_comment(req.repo, issue["number"], body=req.body["body"], author=req.actor)
    return ApiResponse(201, copy.deepcopy(comment), {"Location": comment["url"]})


async def update_comment(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    comment = _comment(fake, req)
    if comment is None:
        return not_found(DOC_COMMENT)
    comment["body"] = req.body["body"]
    fake.touch(comment)
    return ApiResponse(200, copy.deepcopy(comment))


def _label_names(body: Any) -> list[str]:
    """add-labels accepts {"labels": [...]}, a bare list, and names or {"name": ...} objects."""
    items = body.get("labels", []) if isinstance(body, dict) else body if isinstance(body, list) else []
    return [i["name"] if isinstance(i, dict) else i for i in items]


async def add_labels(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    if issue is None:
        return not_found(DOC_ISSUE)
    assert req.repo is not None
    present = {label["name"].lower() for label in issue["labels"]}
    for name in _label_names(req.body):
        if name.lower() not in present:
            # GitHub creates a label the repository does not have yet.
            issue["labels"].append(copy.deepcopy(fake.ensure_label(req.repo, name)))
            present.add(name.lower())
    fake.touch(issue)
    return ApiResponse(200, copy.deepcopy(issue["labels"]))


async def remove_label(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    if issue is None:
        return not_found(DOC_ISSUE)
    name = req.params["name"]
    kept = [label for label in issue["labels"] if label["name"].lower() != name.lower()]
    if len(kept) == len(issue["labels"]):
        return ApiResponse(404, {"message": "Label does not exist", "documentation_url": DOC_LABEL, "status": "404"})
    issue["labels"] = kept
    fake.touch(issue)
    return ApiResponse(200, copy.deepcopy(kept))


async def react_to_issue(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    issue = _issue(fake, req)
    if issue is None:
        return not_found(DOC_ISSUE)
    assert req.repo is not None and req.actor is not None
    subject = ("issue", (req.repo.full_name.lower(), issue["number"]))
    reaction, created = fake.add_reaction(subject, issue, req.actor, req.body["content"])
    return ApiResponse(201 if created else 200, copy.deepcopy(reaction))


async def react_to_comment(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    comment = _comment(fake, req)
    if comment is None:
        return not_found(DOC_COMMENT)
    assert req.actor is not None
    reaction, created = fake.add_reaction(("comment", comment["id"]), comment, req.actor, req.body["content"])
    return ApiResponse(201 if created else 200, copy.deepcopy(reaction))


async def react_to_review_comment(fake: "FakeGitHub", req: ApiRequest) -> ApiResponse:
    assert req.repo is not None and req.actor is not None
    comment = fake.find_review_comment(req.repo, req.params["comment_id"])
    if comment is None:
        return not_found("https://docs.github.com/rest/reactions/reactions#create-reaction-for-a-pull-request-review-comment")
    reaction, created = fake.add_reaction(("review_comment", comment["id"]), comment, req.actor, req.body["content"])
    return ApiResponse(201 if created else 200, copy.deepcopy(reaction))


HANDLERS: dict[str, Handler] = {
    "issues/get": get_issue,
    "issues/list-comments": list_comments,
    "issues/create-comment": create_comment,
    "issues/update-comment": update_comment,
    "issues/add-labels": add_labels,
    "issues/remove-label": remove_label,
    "reactions/create-for-issue": react_to_issue,
    "reactions/create-for-issue-comment": react_to_comment,
    "reactions/create-for-pull-request-review-comment": react_to_review_comment,
}

"""`agentvine image build|base`: the service's deployable image, built here with no container registry
(app/operator/deploy/; docs/deploy.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.agent.sandbox.rootfs import BuildError
from app.operator.deploy.build import ImagePlan, build_base_image, build_service_image
from app.operator.deploy.recipe import BASE_IMAGE, DEFAULT_SERVICE_IMAGE


def _build(args: argparse.Namespace) -> int:
    plan = ImagePlan(source=Path(args.source).resolve(), tag=args.tag, base_tag=args.base_tag,
                     rebuild_base=args.rebuild_base)
    try:
        build_service_image(plan, log=lambda line: print(line, flush=True))
    except BuildError as exc:
        print(f"agentvine image build: {exc}", file=sys.stderr)
        return 1
    return 0


def _base(args: argparse.Namespace) -> int:
    if args.print_tag:
        print(BASE_IMAGE)
        return 0
    from app.agent.sandbox.image import docker_client

    try:
        build_base_image(docker_client(timeout=600), BASE_IMAGE, lambda line: print(line, flush=True), force=args.force)
    except BuildError as exc:
        print(f"agentvine image base: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers) -> None:
    image = subparsers.add_parser("image", help="build the service's own image (the Dockerfile; docs/deploy.md)")
    steps = image.add_subparsers(dest="image_command", required=True)
    build = steps.add_parser("build", help="the base image if missing, the wheelhouse, then the Dockerfile")
    build.add_argument("--tag", default=DEFAULT_SERVICE_IMAGE, help=f"default {DEFAULT_SERVICE_IMAGE}")
    build.add_argument("--source", default=".", help="the checkout to build (default: the current folder)")
    build.add_argument("--base-tag", default=BASE_IMAGE, help=f"the base image (default {BASE_IMAGE})")
    build.add_argument("--rebuild-base", action="store_true", help="rebuild the base image even if it exists")
    build.set_defaults(func=_build)
    base = steps.add_parser("base", help="only the base image (a Debian root filesystem, docker import)")
    base.add_argument("--force", action="store_true", help="rebuild it even if it exists")
    base.add_argument("--print-tag", action="store_true", help="print its tag and exit")
    base.set_defaults(func=_base)

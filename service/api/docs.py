"""OpenAPI at /schema with a Swagger UI page whose scripts, styles and icon the service serves itself.

The assets live in `service/api/static/` (vendored from the npm package `swagger-ui-dist`
by `ci/vendor-docs-assets.sh`, which records the version; Apache-2.0, LICENSE and NOTICE
alongside) and are served at `/schema/assets/`. Nothing on the page comes from a CDN, so the
documentation works on an air-gapped cluster.

Routes: `/schema` and `/schema/swagger` (the page), `/schema/openapi.json`,
`/schema/openapi.yaml`, `/schema/assets/*`.
"""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent / "static"
SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
BEARER_SCHEME = "BearerAuth"


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Swagger UI from local files; also mounts the asset route under the schema router."""

    def __init__(self) -> None:
        super().__init__(
            path=["/", "/swagger"],
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS_PATH.removeprefix(SCHEMA_PATH),
                directories=[STATIC_DIR],
                name="docs-assets",
                cache_control=CacheControlHeader(max_age=86_400, public=True),
                include_in_schema=False,
            )
        )


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="MemStack API",
        version=version,
        description=(
            "Episodes in, a per-project knowledge graph out. Authenticate with "
            "`Authorization: Bearer msk_...`; errors are application/problem+json."
        ),
        path=SCHEMA_PATH,
        render_plugins=[OfflineSwaggerRenderPlugin(), JsonRenderPlugin(), YamlRenderPlugin()],
        components=Components(
            security_schemes={
                BEARER_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A MemStack API key (`msk_...`).",
                )
            }
        ),
    )

//! The resource API: one module per resource, composed here.

pub mod admin;
pub mod me;
pub mod security;

use poem_openapi::{OpenApiService, Tags};

/// Groups of operations in the spec and Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// The calling credential.
    Identity,
    /// Your organization's API keys and OAuth clients.
    Admin,
}

/// Every API of the service, in spec order.
pub type Apis = (me::MeApi, admin::AdminApi);

pub fn apis() -> Apis {
    (me::MeApi, admin::AdminApi)
}

pub const SPEC_PATH: &str = "/api/v1/openapi.json";

/// The OpenAPI service; `server` is the base URL shown in the spec ("/" when unknown).
pub fn openapi_service(server: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "Breadbox API", env!("CARGO_PKG_VERSION"))
        .description(include_str!("../../../openapi/description.md"))
        .server(server)
}

/// The spec as committed under `openapi/` (server-independent).
pub fn spec_json() -> String {
    openapi_service("/").spec()
}

//! The resource API: one module per resource, composed here.

pub mod accounts;
pub mod admin;
pub mod contacts;
pub mod deals;
pub mod me;
pub mod paging;
pub mod security;
pub mod webhooks;
pub mod wire;

use poem_openapi::{OpenApiService, Tags};

/// Groups of operations in the spec and Swagger UI.
#[derive(Tags)]
pub enum ApiTags {
    /// The calling credential.
    Identity,
    /// Your organization's API keys and OAuth clients.
    Admin,
    /// The MSP's clients: sites, seats, lifecycle.
    Accounts,
    /// People at the clients and their roles at accounts.
    Contacts,
    /// The sales pipeline: stages, history, won/lost outcomes.
    Deals,
    /// Where events are sent, signed; deliveries and their attempts.
    Webhooks,
}

/// Every API of the service, in spec order.
pub type Apis = (me::MeApi, admin::AdminApi, accounts::AccountsApi, contacts::ContactsApi, deals::DealsApi, webhooks::WebhooksApi);

pub fn apis() -> Apis {
    (me::MeApi, admin::AdminApi, accounts::AccountsApi, contacts::ContactsApi, deals::DealsApi, webhooks::WebhooksApi)
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
    spec_of(&openapi_service("/"))
}

/// The document of `service`, each operation with its rate-limit class as
/// `x-rate-limit-class`: the class the limiter applies, from the same function.
pub fn spec_of(service: &OpenApiService<Apis, ()>) -> String {
    with_rate_limit_classes(&service.spec())
}

/// Adds `"x-rate-limit-class"` after each operation's `"operationId"` line of a
/// pretty-printed document, keeping its field order (a `serde_json::Value` would sort).
fn with_rate_limit_classes(spec: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(spec).expect("poem-openapi writes JSON");
    let mut classes = std::collections::HashMap::new();
    for (path, item) in parsed["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            if let (Some(id), Some(class)) = (operation["operationId"].as_str(), breadbox_auth::limits::class_of(method, path)) {
                classes.insert(format!("\"{id}\""), class.as_str());
            }
        }
    }
    let mut out = String::with_capacity(spec.len() + classes.len() * 48);
    for line in spec.lines() {
        let trimmed = line.trim_start();
        let class = trimmed
            .strip_prefix("\"operationId\": ")
            .and_then(|id| classes.get(id.trim_end_matches(',')));
        match class {
            Some(class) => {
                let indent = &line[..line.len() - trimmed.len()];
                let (line, comma) = match line.strip_suffix(',') {
                    Some(line) => (line, ","),
                    None => (line, ""),
                };
                out.push_str(&format!("{line},\n{indent}\"x-rate-limit-class\": \"{class}\"{comma}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.truncate(out.trim_end().len());
    out
}

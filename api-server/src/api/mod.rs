//! The resource API: one module per resource, composed here.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod body;
pub mod compliance;
pub mod contacts;
pub mod contract_admin;
pub mod contracts;
pub mod deals;
pub mod device_bulk;
pub mod devices;
pub mod health;
pub mod leads;
pub mod me;
pub mod memo;
pub mod mrr;
pub mod onboarding;
pub mod paging;
pub mod params;
pub mod ranged;
pub mod reconciliation;
pub mod security;
pub mod text;
pub mod touchpoints;
pub mod webhooks;
pub mod wire;

use poem_openapi::{OpenApi, OpenApiService, Tags};

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
    /// The device inventory your RMM pushes, one at a time or 500 per call.
    Devices,
    /// What each account buys: service lines, terms, amendments.
    Contracts,
    /// Monthly recurring revenue from the active contracts.
    Mrr,
    /// Seat and device counts from other tools compared with the contracts.
    Reconciliation,
    /// Account health scores from weighted external signals.
    Health,
    /// Calls, e-mails, meetings, tickets and QBRs logged by external tools.
    Touchpoints,
    /// Prospective clients and their ICP scores.
    Leads,
    /// Compliance items per account and framework, and each framework's status.
    Compliance,
    /// Onboarding projects of new accounts and their milestones.
    Onboarding,
    /// Every API call made in your organization, as recorded.
    Audit,
    /// Where events are sent, signed; deliveries and their attempts.
    Webhooks,
}

/// The platform's own operations: the caller, credentials, and operator writes.
type PlatformApis = (me::MeApi, admin::AdminApi, contract_admin::AdminContractsApi, audit::AuditApi, webhooks::WebhooksApi);
/// The CRM records an integration syncs.
type CrmApis = (
    accounts::AccountsApi,
    contacts::ContactsApi,
    deals::DealsApi,
    contracts::ContractsApi,
    devices::DevicesApi,
    device_bulk::DeviceBulkApi,
    health::HealthApi,
    touchpoints::TouchpointsApi,
);
/// Reports and the remaining reads of the scope table.
type InsightApis = (
    mrr::MrrApi,
    reconciliation::ReconciliationApi,
    leads::LeadsApi,
    compliance::ComplianceApi,
    onboarding::OnboardingApi,
);

/// Every API of the service, in spec order, in groups (poem-openapi composes tuples of
/// a bounded size).
pub type Apis = (PlatformApis, CrmApis, InsightApis);

pub fn apis() -> Apis {
    (
        (me::MeApi, admin::AdminApi, contract_admin::AdminContractsApi, audit::AuditApi, webhooks::WebhooksApi),
        (
            accounts::AccountsApi,
            contacts::ContactsApi,
            deals::DealsApi,
            contracts::ContractsApi,
            devices::DevicesApi,
            device_bulk::DeviceBulkApi,
            health::HealthApi,
            touchpoints::TouchpointsApi,
        ),
        (mrr::MrrApi, reconciliation::ReconciliationApi, leads::LeadsApi, compliance::ComplianceApi, onboarding::OnboardingApi),
    )
}

pub const SPEC_PATH: &str = "/api/v1/openapi.json";

/// The API's operations in one router, built as poem-openapi's `into_endpoint` builds
/// it (a `Route` over each path's methods, the query string parsed for `Query`
/// parameters) without three of its layers: a boxed `RouteMethod` per path, a `before`
/// for the query and a boxed whole, each of which moved the request's future into a
/// box of its own (four boxes a request, now two: the path's and the operation's).
/// `OpenApiService` still makes the spec and the Swagger UI. `spec` (`spec_of`, parsed)
/// and its `templates` (`route_templates`) tell which operations take query parameters.
pub fn router(spec: &serde_json::Value, templates: &std::collections::HashMap<String, std::sync::Arc<str>>) -> poem::Route {
    let with_query = operations_with_query(spec, templates);
    let mut table = std::collections::HashMap::new();
    apis().add_routes(&mut table);
    table.into_iter().fold(poem::Route::new(), |route, (path, methods)| {
        let methods = methods
            .into_iter()
            .map(|(method, endpoint)| {
                let query = with_query.contains(&(path.clone(), method.clone()));
                Operation { method, query, endpoint }
            })
            .collect();
        route.at(path, Methods::new(methods))
    })
}

/// The operations of `spec` that declare a parameter `in: query`, by poem's route
/// pattern (the keys of `templates`, from `route_templates`) and method.
fn operations_with_query(
    spec: &serde_json::Value,
    templates: &std::collections::HashMap<String, std::sync::Arc<str>>,
) -> std::collections::HashSet<(String, poem::http::Method)> {
    let mut found = std::collections::HashSet::new();
    for (pattern, template) in templates {
        for (method, operation) in spec["paths"][&**template].as_object().into_iter().flatten() {
            let params = operation["parameters"].as_array().into_iter().flatten();
            if params.clone().any(|p| p["in"] == "query") {
                if let Ok(method) = method.to_uppercase().parse() {
                    found.insert((pattern.clone(), method));
                }
            }
        }
    }
    found
}

/// One operation of a path.
struct Operation {
    method: poem::http::Method,
    /// Whether it has `Query` parameters, which read the parsed query string from the
    /// request's data. Only those get it: a fourth value in the request's data grew
    /// its map (an allocation, a copy and a free) on every request.
    query: bool,
    endpoint: poem::endpoint::BoxEndpoint<'static>,
}

/// One path's operations by method, answered as poem's `RouteMethod` answers: a `HEAD`
/// without its own operation is the `GET` without the body, another method is 405,
/// with the `Allow` header RFC 9110 requires of it.
struct Methods {
    operations: Vec<Operation>,
    /// `Allow` of a 405: the path's methods (and `HEAD` where there is a `GET`).
    allow: poem::http::HeaderValue,
}

impl Methods {
    fn new(operations: Vec<Operation>) -> Methods {
        use poem::http::Method;
        let mut names: Vec<&str> = operations.iter().map(|op| op.method.as_str()).collect();
        if names.contains(&Method::GET.as_str()) && !names.contains(&Method::HEAD.as_str()) {
            names.push(Method::HEAD.as_str());
        }
        names.sort_unstable();
        let allow = poem::http::HeaderValue::from_str(&names.join(", ")).expect("method names are header text");
        Methods { operations, allow }
    }
}

impl poem::Endpoint for Methods {
    type Output = poem::Response;

    fn call(&self, mut req: poem::Request) -> impl std::future::Future<Output = poem::Result<poem::Response>> + Send {
        use futures::future::{ready, Either, FutureExt};
        use poem::http::Method;
        let found = |method: &Method| self.operations.iter().find(|op| op.method == *method);
        let (operation, head) = match found(req.method()) {
            Some(op) => (Some(op), false),
            None => (found(&Method::GET).filter(|_| req.method() == Method::HEAD), true),
        };
        let Some(operation) = operation else {
            let mut response = crate::middleware::method_not_allowed(req.method().as_str(), req.uri().path());
            response.headers_mut().insert(poem::http::header::ALLOW, self.allow.clone());
            return Either::Right(ready(Err(poem::Error::from_response(response))));
        };
        if operation.query {
            // What `into_endpoint`'s `extract_query` does: `Query` parameters read this.
            let query: Vec<(String, String)> = req.params().unwrap_or_default();
            req.extensions_mut().insert(poem_openapi::__private::UrlQuery(query));
        }
        if head {
            req.set_method(Method::GET);
            Either::Left(Either::Right(operation.endpoint.call(req).map(|answer| {
                answer.map(|mut response| {
                    response.set_body(());
                    response
                })
            })))
        } else {
            Either::Left(Either::Left(operation.endpoint.call(req)))
        }
    }
}

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

/// The route templates of the spec (`/api/v1/deals/{id}`) by method and poem's route
/// pattern of the same operation (`GET /api/v1/deals/:param0`), for the audit log.
pub fn route_templates(spec: &serde_json::Value) -> std::collections::HashMap<String, std::sync::Arc<str>> {
    let mut templates = std::collections::HashMap::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        let mut pattern = String::with_capacity(path.len());
        let mut params = 0;
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    pattern.push_str(&format!(":param{params}"));
                    params += 1;
                    in_param = true;
                }
                '}' => in_param = false,
                c if !in_param => pattern.push(c),
                _ => {}
            }
        }
        if item.as_object().is_some_and(|methods| !methods.is_empty()) {
            templates.insert(pattern, std::sync::Arc::from(path.as_str()));
        }
    }
    templates
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

#[cfg(test)]
mod router_tests {
    use super::*;

    #[test]
    fn only_operations_with_query_parameters_get_the_parsed_query() {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).expect("the spec is JSON");
        let with_query = operations_with_query(&spec, &route_templates(&spec));
        let has = |pattern: &str, method: poem::http::Method| with_query.contains(&(pattern.to_owned(), method));
        assert!(has("/api/v1/accounts", poem::http::Method::GET), "list filters and paging: {with_query:?}");
        assert!(has("/api/v1/audit-log", poem::http::Method::GET));
        assert!(!has("/api/v1/accounts", poem::http::Method::POST));
        assert!(!has("/api/v1/accounts/:param0", poem::http::Method::GET));
        assert!(!has("/api/v1/me", poem::http::Method::GET));
        assert!(with_query.len() >= 15, "every list: {with_query:?}");
        // The router's own patterns are the ones found.
        let mut table = std::collections::HashMap::new();
        apis().add_routes(&mut table);
        let listed = table.iter().flat_map(|(path, methods)| methods.keys().map(|m| (path.clone(), m.clone())));
        assert_eq!(listed.filter(|op| with_query.contains(op)).count(), with_query.len(), "{:?}", table.keys().collect::<Vec<_>>());
    }
}

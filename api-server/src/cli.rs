//! The admin commands. Each opens the database directly (migrating it if needed),
//! does one thing and prints the result — as JSON with `--json`.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use serde_json::json;

use breadbox_auth::admin::{ClientInfo, KeyInfo, OrgInfo};
use breadbox_auth::{AuthService, Environment, Plan, ScopeSet};

use crate::api::contract_admin::CreateContract;
use crate::api::contracts::Contract;
use crate::config::{
    ClientCommand, Common, ContractCommand, DemoArgs, KeyCommand, OrgCommand, SigningKeyCommand, WebhookCommand,
};
use crate::domain::{contracts, Crm, DomainError, Patch, Tenant};
use crate::webhooks::endpoints::{self, Endpoint, EndpointChanges};
use crate::webhooks::target::Policy;
use crate::time::rfc3339;

async fn open(common: &Common) -> anyhow::Result<Arc<AuthService>> {
    Ok(AuthService::start(common.auth.clone(), "http://127.0.0.1:8080".to_owned()).await?)
}

fn print(common: &Common, value: serde_json::Value, text: String) {
    if common.json {
        println!("{value:#}");
    } else {
        println!("{text}");
    }
}

fn parse_env(env: &str) -> anyhow::Result<Environment> {
    env.parse().map_err(|e: String| anyhow!(e))
}

fn parse_plan(plan: &str) -> anyhow::Result<Plan> {
    plan.parse().map_err(|e: String| anyhow!(e))
}

fn parse_scopes(scopes: &str) -> anyhow::Result<ScopeSet> {
    let set = ScopeSet::parse(scopes)?;
    if set.is_empty() {
        bail!("give at least one scope");
    }
    Ok(set)
}

fn org_line(o: &OrgInfo) -> String {
    format!("{}  {}  plan={}  created={}", o.id, o.name, o.plan, rfc3339(o.created_at))
}

fn key_line(k: &KeyInfo) -> String {
    let state = match (k.revoked_at, k.expires_at) {
        (Some(at), _) => format!("revoked {}", rfc3339(at)),
        (None, Some(at)) => format!("expires {}", rfc3339(at)),
        _ => "active".to_owned(),
    };
    format!("{}  {}…  {}  {}  [{}]  {}", k.id, k.prefix, k.env, k.name, k.scopes.join(" "), state)
}

fn client_line(c: &ClientInfo) -> String {
    let state = c.disabled_at.map(|at| format!("disabled {}", rfc3339(at))).unwrap_or_else(|| "active".into());
    format!("{}  {}  {}  [{}]  {}", c.id, c.env, c.name, c.scopes.join(" "), state)
}

pub async fn org(command: OrgCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    match command {
        OrgCommand::Create { name, plan } => {
            let org = service.create_org(&name, parse_plan(&plan)?).await?;
            print(&common, json!(org), format!("created organization {}", org_line(&org)));
        }
        OrgCommand::List => {
            let orgs = service.list_orgs().await?;
            let text = orgs.iter().map(org_line).collect::<Vec<_>>().join("\n");
            print(&common, json!(orgs), text);
        }
        OrgCommand::SetPlan { id, plan } => {
            let org = service.set_plan(&id, parse_plan(&plan)?).await?;
            print(&common, json!(org), format!("updated organization {}", org_line(&org)));
        }
    }
    Ok(())
}

pub async fn key(command: KeyCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    match command {
        KeyCommand::Create { org, env, scopes, preset, name } => {
            let scopes = match (scopes, preset.as_deref()) {
                (Some(scopes), None) => parse_scopes(&scopes)?,
                (None, Some("read_only")) => ScopeSet::read_only(),
                (None, Some("full_access")) => ScopeSet::full_access(),
                (None, Some(other)) => bail!("unknown preset `{other}` (expected read_only or full_access)"),
                _ => bail!("give --scopes or --preset"),
            };
            let (info, secret) = service.create_key(&org, parse_env(&env)?, scopes, &name).await?;
            print(
                &common,
                json!({ "key": secret.expose(), "apiKey": info }),
                format!("{}\n\nKey (shown once, store it now):\n{}", key_line(&info), secret.expose()),
            );
        }
        KeyCommand::List { org } => {
            let keys = service.list_keys(&org).await?;
            let text = keys.iter().map(key_line).collect::<Vec<_>>().join("\n");
            print(&common, json!(keys), text);
        }
        KeyCommand::Revoke { id } => {
            let info = service.revoke_key(&id).await?;
            print(&common, json!(info), format!("revoked {}", key_line(&info)));
        }
        KeyCommand::Rotate { id, grace } => {
            let grace = humantime::parse_duration(&grace).context("--grace: use a duration such as 24h or 30m")?;
            let (info, secret) = service.rotate_key(&id, grace).await?;
            print(
                &common,
                json!({ "key": secret.expose(), "apiKey": info, "replaces": id }),
                format!(
                    "{}\nreplaces {id} (which works for {} more)\n\nKey (shown once, store it now):\n{}",
                    key_line(&info),
                    humantime::format_duration(grace),
                    secret.expose()
                ),
            );
        }
    }
    Ok(())
}

pub async fn client(command: ClientCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    match command {
        ClientCommand::Create { org, env, scopes, name } => {
            let (info, secret) = service.create_client(&org, parse_env(&env)?, parse_scopes(&scopes)?, &name).await?;
            print(
                &common,
                json!({ "clientId": info.id, "clientSecret": secret.expose(), "client": info }),
                format!(
                    "{}\n\nclient_id:     {}\nclient_secret: {} (shown once, store it now)",
                    client_line(&info),
                    info.id,
                    secret.expose()
                ),
            );
        }
        ClientCommand::List { org } => {
            let clients = service.list_clients(&org).await?;
            let text = clients.iter().map(client_line).collect::<Vec<_>>().join("\n");
            print(&common, json!(clients), text);
        }
        ClientCommand::RotateSecret { id } => {
            let (info, secret) = service.rotate_client_secret(&id).await?;
            print(
                &common,
                json!({ "clientId": info.id, "clientSecret": secret.expose() }),
                format!("new secret for {}: {} (shown once, store it now)", info.id, secret.expose()),
            );
        }
        ClientCommand::Disable { id } => {
            let info = service.disable_client(&id).await?;
            print(&common, json!(info), format!("disabled {}", client_line(&info)));
        }
    }
    Ok(())
}

pub async fn signing_key(command: SigningKeyCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    match command {
        SigningKeyCommand::Rotate => {
            let kid = service.rotate_signing_key().await?;
            print(&common, json!({ "kid": kid }), format!("now signing with key {kid}; older keys verify until their tokens expire"));
        }
    }
    Ok(())
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let common = args.common;
    let service = open(&common).await?;
    let org = service.get_org(&args.org).await?;
    let tenant = Tenant { org_id: org.id.clone(), env: parse_env(&args.env)? };
    let crm = Crm::load(service.db().clone()).await?;
    let loaded = crate::demo::load(&crm, &tenant, args.seed).await.map_err(|e| anyhow!("loading the demo data: {e}"))?;
    let text = format!(
        "loaded into {} ({}): {} accounts, {} contacts, {} deals, {} contracts, {} devices, {} health signals \
         (with 90 days of history), {} touchpoints, {} reconciliation reports, {} leads, {} compliance items, \
         {} onboarding projects",
        org.name,
        args.env,
        loaded.accounts,
        loaded.contacts,
        loaded.deals,
        loaded.contracts,
        loaded.devices,
        loaded.health_signals,
        loaded.touchpoints,
        loaded.reconciliations,
        loaded.leads,
        loaded.compliance_items,
        loaded.onboarding_projects
    );
    print(&common, json!({ "orgId": org.id, "environment": args.env, "loaded": loaded }), text);
    Ok(())
}

/// The contract body in `file`, parsed exactly as the API parses it.
fn read_contract(file: &std::path::Path) -> anyhow::Result<CreateContract> {
    use poem_openapi::types::ParseFromJSON;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    CreateContract::parse_from_json(Some(value)).map_err(|e| anyhow!("{}: {}", file.display(), e.into_message()))
}

pub async fn contract(command: ContractCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    let crm = Crm::load(service.db().clone()).await?;
    match command {
        ContractCommand::Create { org, env, file } => {
            let body = read_contract(&file)?;
            let org = service.get_org(&org).await?;
            let tenant = Tenant { org_id: org.id, env: parse_env(&env)? };
            let detail = match contracts::create(&crm, &tenant, body.into()).await {
                Ok(detail) => detail,
                Err(DomainError::Invalid(violations)) => {
                    let lines: Vec<String> =
                        violations.into_vec().into_iter().map(|v| format!("  {}: {}", v.field, v.issue)).collect();
                    bail!("the contract is not valid:\n{}", lines.join("\n"));
                }
                Err(err) => return Err(err.into()),
            };
            let c = &detail.contract;
            let text = format!(
                "created contract {}  {}  account={}  {}  {}..{}  MRR {} {} (minor units)",
                c.id,
                c.name,
                c.account_id,
                c.status.as_str(),
                c.start_date,
                c.end_date.as_deref().unwrap_or(""),
                c.totals.monthly_recurring,
                c.currency
            );
            let value = poem_openapi::types::ToJSON::to_json(&Contract::from(detail.clone())).unwrap_or_default();
            print(&common, value, text);
        }
    }
    Ok(())
}

fn endpoint_line(e: &Endpoint) -> String {
    let state = match (e.enabled, &e.disabled_reason) {
        (true, _) => "enabled".to_owned(),
        (false, Some(why)) => format!("disabled: {why}"),
        (false, None) => "disabled".to_owned(),
    };
    format!("{}  {}  [{}]  {}", e.id, e.url, e.events.join(","), state)
}

fn endpoint_json(e: &Endpoint) -> serde_json::Value {
    json!({
        "id": e.id, "url": e.url, "description": e.description, "events": e.events, "enabled": e.enabled,
        "disabledReason": e.disabled_reason, "createdAt": rfc3339(e.created_at),
    })
}

pub async fn webhook(command: WebhookCommand, common: Common) -> anyhow::Result<()> {
    let service = open(&common).await?;
    let crm = Crm::load(service.db().clone()).await?;
    let tenant = |org: String, env: &str| -> anyhow::Result<Tenant> { Ok(Tenant { org_id: org, env: parse_env(env)? }) };
    match command {
        WebhookCommand::Create { org, env, url, events, description, allow_private } => {
            let policy = Policy { allow_loopback: allow_private, allow_private };
            let changes = EndpointChanges {
                url: Patch::Set(url),
                events: Patch::Set(events.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect()),
                description: Patch::from_option(description),
                enabled: Patch::Keep,
            };
            let (e, secret) = endpoints::create(&crm, &tenant(org, &env)?, &policy, changes).await.map_err(domain_error)?;
            print(
                &common,
                json!({ "secret": secret, "endpoint": endpoint_json(&e) }),
                format!("{}\n\nSigning secret (shown once, store it now):\n{secret}", endpoint_line(&e)),
            );
        }
        WebhookCommand::List { org, env } => {
            let t = tenant(org, &env)?;
            let mut all = Vec::new();
            let mut page = crate::domain::paging::PageRequest { limit: 100, after: crate::domain::paging::Position::start(), updated_since: None };
            loop {
                let found = endpoints::list(&crm, &t, &page).await.map_err(domain_error)?;
                all.extend(found.items);
                match found.next {
                    Some(next) => page.after = next,
                    None => break,
                }
            }
            let text = all.iter().map(endpoint_line).collect::<Vec<_>>().join("\n");
            print(&common, json!(all.iter().map(endpoint_json).collect::<Vec<_>>()), text);
        }
        WebhookCommand::Delete { org, env, id } => {
            endpoints::delete(&crm, &tenant(org, &env)?, &id).await.map_err(domain_error)?;
            print(&common, json!({ "deleted": id }), format!("deleted {id}"));
        }
        WebhookCommand::RotateSecret { org, env, id } => {
            let (e, secret) = endpoints::rotate_secret(&crm, &tenant(org, &env)?, &id).await.map_err(domain_error)?;
            print(
                &common,
                json!({ "secret": secret, "endpoint": endpoint_json(&e) }),
                format!("new secret for {}: {secret} (shown once; the previous one signs too for 24 h)", e.id),
            );
        }
        WebhookCommand::SetEnabled { org, env, id, enabled } => {
            // Only `enabled` changes, so the URL policy is not consulted.
            let changes = EndpointChanges { enabled: Patch::Set(enabled), ..EndpointChanges::default() };
            let e = endpoints::update(&crm, &tenant(org, &env)?, &Policy::default(), &id, changes).await.map_err(domain_error)?;
            print(&common, endpoint_json(&e), endpoint_line(&e));
        }
        WebhookCommand::Test { org, env, id } => {
            let delivery = endpoints::send_test(&crm, &tenant(org, &env)?, &id).await.map_err(domain_error)?;
            print(&common, json!({ "deliveryId": delivery }), format!("queued test delivery {delivery}"));
        }
    }
    Ok(())
}

fn domain_error(err: crate::domain::DomainError) -> anyhow::Error {
    match err {
        crate::domain::DomainError::Invalid(v) => {
            anyhow!(v.into_vec().into_iter().map(|v| format!("{}: {}", v.field, v.issue)).collect::<Vec<_>>().join("; "))
        }
        other => anyhow!(other),
    }
}

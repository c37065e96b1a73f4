//! First run: on a database without organizations, create one with an admin key and an
//! OAuth client, and print them — once, to standard output, never to the logs.

use breadbox_auth::{AuthService, Environment, Plan, Scope, ScopeSet};

/// Creates the default organization and its first credentials if there is no organization.
pub async fn first_run(service: &AuthService, base_url: &str) -> anyhow::Result<()> {
    if service.count_orgs().await? > 0 {
        return Ok(());
    }
    let org = service.create_org("Default organization", Plan::Pro).await?;
    let mut admin_scopes = ScopeSet::full_access();
    admin_scopes.insert(Scope::AdminWrite);
    let (key, secret) = service.create_key(&org.id, Environment::Live, admin_scopes, "First admin key").await?;
    let (client, client_secret) =
        service.create_client(&org.id, Environment::Live, ScopeSet::full_access(), "First OAuth client").await?;
    println!(
        r#"
============================================================================
 Breadbox is set up. These credentials are shown ONCE — copy them now.

 Organization:   {org_id} ("{org_name}", plan {plan})
 Admin API key:  {key}
                 (id {key_id}; full_access + admin:write, environment live)
 OAuth client:   client_id     {client_id}
                 client_secret {client_secret}

 Get a token:
   curl -s -X POST {base}/api/v1/auth/token \
     -u '{client_id}:{client_secret}' \
     -d grant_type=client_credentials

 Call the API:
   curl -s {base}/api/v1/me -H 'X-API-Key: {key}'

 Sample data (accounts, contacts, contracts, deals, devices, health…) to explore:
   breadbox demo --org {org_id} --env live

 Explore: {base}/docs (Swagger UI)   Spec: {base}/api/v1/openapi.json
 More credentials: breadbox key create --org {org_id} --preset read_only --name "My script"
============================================================================
"#,
        org_id = org.id,
        org_name = org.name,
        plan = org.plan,
        key = secret.expose(),
        key_id = key.id,
        client_id = client.id,
        client_secret = client_secret.expose(),
        base = base_url,
    );
    Ok(())
}

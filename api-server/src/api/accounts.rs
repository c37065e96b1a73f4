//! `/api/v1/accounts`: the MSP's clients.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::ranged::{Int, Items};
use super::paging::Listing;
use super::security::{AccountsRead, AccountsWrite, Auth, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, to_wire, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::accounts::{self as domain, AccountChanges, AccountFilter, SiteInput};
use crate::domain::events::Wire;
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// Where an account stands with the MSP. Deleting an account makes it `CHURNED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    Lead,
    Onboarding,
    Active,
    AtRisk,
    Churned,
}

impl From<domain::Lifecycle> for Lifecycle {
    fn from(l: domain::Lifecycle) -> Self {
        match l {
            domain::Lifecycle::Lead => Lifecycle::Lead,
            domain::Lifecycle::Onboarding => Lifecycle::Onboarding,
            domain::Lifecycle::Active => Lifecycle::Active,
            domain::Lifecycle::AtRisk => Lifecycle::AtRisk,
            domain::Lifecycle::Churned => Lifecycle::Churned,
        }
    }
}

impl From<Lifecycle> for domain::Lifecycle {
    fn from(l: Lifecycle) -> Self {
        match l {
            Lifecycle::Lead => domain::Lifecycle::Lead,
            Lifecycle::Onboarding => domain::Lifecycle::Onboarding,
            Lifecycle::Active => domain::Lifecycle::Active,
            Lifecycle::AtRisk => domain::Lifecycle::AtRisk,
            Lifecycle::Churned => domain::Lifecycle::Churned,
        }
    }
}

/// A location of the client that the MSP serves.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    /// What the client calls it, e.g. "Head office".
    pub name: Text<{ crate::domain::accounts::SITE_NAME_MAX }, { format::NON_BLANK }>,
    /// Postal address, free text.
    #[oai(nullable)]
    pub address: Option<Text<{ crate::domain::accounts::ADDRESS_MAX }>>,
}

/// A client of the MSP.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `acc_…`
    pub id: String,
    pub name: String,
    /// The client's DNS domain, lower case; unique among your accounts.
    #[oai(nullable)]
    pub domain: Option<String>,
    #[oai(nullable)]
    pub industry: Option<String>,
    pub lifecycle: Lifecycle,
    pub sites: Vec<Site>,
    /// A contact (`con_…`) of the same organization and environment.
    #[oai(nullable)]
    pub primary_contact_id: Option<String>,
    /// Seats (users) under management.
    #[oai(nullable)]
    pub seats: Option<i64>,
    #[oai(nullable)]
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Account {
    fn example() -> Self {
        Account {
            id: "acc_5Hq2vWZk3nR8yT1bC".into(),
            name: "Contoso Dental".into(),
            domain: Some("contosodental.com".into()),
            industry: Some("Healthcare".into()),
            lifecycle: Lifecycle::Active,
            sites: vec![Site { name: "Head office".into(), address: Some("12 Harbour St, Portland, ME 04101".into()) }],
            primary_contact_id: Some("con_8Jd3kQm1xZp4rW7aL".into()),
            seats: Some(42),
            notes: Some("Quarterly QBR with the practice manager.".into()),
            created_at: "2024-05-01T09:30:00Z".into(),
            updated_at: "2024-06-12T14:05:11.204Z".into(),
        }
    }
}

impl Wire for domain::Account {
    fn wire(&self) -> serde_json::Value {
        to_wire(Account::from(self.clone()))
    }
}

impl From<domain::Account> for Account {
    fn from(a: domain::Account) -> Self {
        Account {
            id: a.id,
            name: a.name,
            domain: a.domain,
            industry: a.industry,
            lifecycle: a.lifecycle.into(),
            sites: a.sites.into_iter().map(|s| Site { name: Text(s.name), address: s.address.map(Text) }).collect(),
            primary_contact_id: a.primary_contact_id,
            seats: a.seats,
            notes: a.notes,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// Seats under management, as the domain bounds them.
type Seats = Int<0, { domain::SEATS_MAX }>;
/// An account's sites, as many as the domain keeps.
type Sites = Items<Site, 0, { domain::SITES_MAX }>;

fn site_inputs(sites: Sites) -> Vec<SiteInput> {
    sites.into_iter().map(|s| SiteInput { name: s.name.into(), address: s.address.map(String::from) }).collect()
}

/// A new account. Only `name` is required; `lifecycle` defaults to `LEAD`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateAccount {
    /// 1–200 characters.
    pub name: Required<Text<{ crate::domain::accounts::NAME_MAX }, { format::NON_BLANK }>>,
    /// A DNS name such as `contoso.com`, unique among your accounts.
    pub domain: Option<Text<0, { format::DOMAIN }>>,
    pub industry: Option<Text<{ crate::domain::accounts::INDUSTRY_MAX }>>,
    pub lifecycle: Option<EnumText<Lifecycle>>,
    pub sites: Option<Sites>,
    pub primary_contact_id: Option<Text>,
    pub seats: Option<Seats>,
    pub notes: Option<Text<{ crate::domain::accounts::NOTES_MAX }>>,
}

impl Example for CreateAccount {
    fn example() -> Self {
        CreateAccount {
            name: Required(Some("Contoso Dental".into())),
            domain: Some("contosodental.com".into()),
            industry: Some("Healthcare".into()),
            lifecycle: None,
            sites: Some(Items(vec![Site { name: "Head office".into(), address: Some("12 Harbour St, Portland, ME 04101".into()) }])),
            primary_contact_id: None,
            seats: Some(Int(42)),
            notes: None,
        }
    }
}

impl From<CreateAccount> for AccountChanges {
    fn from(b: CreateAccount) -> Self {
        AccountChanges {
            name: given(b.name.0, Into::into),
            domain: given(b.domain, Into::into),
            industry: given(b.industry, Into::into),
            lifecycle: given(b.lifecycle, EnumText::into_string),
            sites: given(b.sites, site_inputs),
            primary_contact_id: given(b.primary_contact_id, Into::into),
            seats: given(b.seats, Into::into),
            notes: given(b.notes, Into::into),
        }
    }
}

/// Changes to an account: absent fields stay as they are, `null` clears an optional
/// field, `sites` replaces the whole list.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateAccount {
    pub name: MaybeUndefined<Text<{ crate::domain::accounts::NAME_MAX }, { format::NON_BLANK }>>,
    #[oai(nullable)]
    pub domain: MaybeUndefined<Text<0, { format::DOMAIN }>>,
    #[oai(nullable)]
    pub industry: MaybeUndefined<Text<{ crate::domain::accounts::INDUSTRY_MAX }>>,
    pub lifecycle: MaybeUndefined<EnumText<Lifecycle>>,
    /// Replaces every site; `null` or `[]` removes them all.
    #[oai(nullable)]
    pub sites: MaybeUndefined<Sites>,
    #[oai(nullable)]
    pub primary_contact_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub seats: MaybeUndefined<Seats>,
    #[oai(nullable)]
    pub notes: MaybeUndefined<Text<{ crate::domain::accounts::NOTES_MAX }>>,
}

impl Example for UpdateAccount {
    fn example() -> Self {
        UpdateAccount {
            name: MaybeUndefined::Undefined,
            domain: MaybeUndefined::Undefined,
            industry: MaybeUndefined::Undefined,
            lifecycle: MaybeUndefined::Value(EnumText::from("AT_RISK")),
            sites: MaybeUndefined::Undefined,
            primary_contact_id: MaybeUndefined::Undefined,
            seats: MaybeUndefined::Value(Int(45)),
            notes: MaybeUndefined::Null,
        }
    }
}

impl From<UpdateAccount> for AccountChanges {
    fn from(b: UpdateAccount) -> Self {
        AccountChanges {
            name: patch(b.name, Into::into),
            domain: patch(b.domain, Into::into),
            industry: patch(b.industry, Into::into),
            lifecycle: patch(b.lifecycle, EnumText::into_string),
            sites: patch(b.sites, site_inputs),
            primary_contact_id: patch(b.primary_contact_id, Into::into),
            seats: patch(b.seats, Into::into),
            notes: patch(b.notes, Into::into),
        }
    }
}

fn tagged(account: domain::Account) -> Tagged<Account> {
    let tag = account.etag();
    Tagged::new(account.into(), &tag)
}

pub struct AccountsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// List accounts
    ///
    /// Oldest first, a page at a time; filter by `lifecycle` and `industry`, and by
    /// `updatedSince` for incremental sync. Churned (deleted) accounts are included.
    #[oai(path = "/accounts", method = "get", operation_id = "list_accounts")]
    #[allow(clippy::too_many_arguments)]
    async fn list_accounts(
        &self,
        #[oai(scope = "Scopes::AccountsRead")] auth: Auth<AccountsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only accounts in this lifecycle stage.
        lifecycle: Query<Option<Lifecycle>>,
        /// Only accounts of this industry (exact match).
        industry: Query<Option<String>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only accounts changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Account>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "accounts", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let filter = AccountFilter { lifecycle: lifecycle.0.map(Into::into), industry: industry.0 };
        let accounts = domain::list(crm, &tenant, &filter, &page).await?;
        Ok(Body(listing.respond(accounts, Account::from)))
    }

    /// Create an account
    #[oai(path = "/accounts", method = "post", operation_id = "create_account")]
    async fn create_account(
        &self,
        #[oai(scope = "Scopes::AccountsWrite")] auth: Auth<AccountsWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateAccount>,
    ) -> Result<Created<Account>, ApiError> {
        let account = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/accounts/{}", account.id), account.etag());
        Ok(Created::new(account.into(), location, &tag))
    }

    /// Get an account
    ///
    /// Churned (deleted) accounts stay readable.
    #[oai(path = "/accounts/:id", method = "get", operation_id = "get_account")]
    async fn get_account(
        &self,
        #[oai(scope = "Scopes::AccountsRead")] auth: Auth<AccountsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The account id, `acc_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Account>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "account", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Update an account
    ///
    /// A partial update: only the fields sent change. With `If-Match`, only if the
    /// account is still at that version (412 otherwise).
    #[oai(path = "/accounts/:id", method = "patch", operation_id = "update_account")]
    async fn update_account(
        &self,
        #[oai(scope = "Scopes::AccountsWrite")] auth: Auth<AccountsWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The account id, `acc_…`.
        id: Path<String>,
        /// An `ETag` of the account: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateAccount>,
    ) -> Result<Tagged<Account>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        Ok(tagged(domain::update(crm, &tenant, &id, body.0.into(), &precondition).await?))
    }

    /// Delete an account
    ///
    /// A soft delete: the account's lifecycle becomes `CHURNED` and it stays readable.
    /// Deleting it again changes nothing.
    #[oai(path = "/accounts/:id", method = "delete", operation_id = "delete_account")]
    async fn delete_account(
        &self,
        #[oai(scope = "Scopes::AccountsWrite")] auth: Auth<AccountsWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The account id, `acc_…`.
        id: Path<String>,
        /// An `ETag` of the account: delete only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
    ) -> Result<Tagged<Account>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        Ok(tagged(domain::delete(crm, &Tenant::from(&auth.principal), &id, &precondition).await?))
    }
}

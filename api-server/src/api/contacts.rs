//! `/api/v1/contacts`: people at the MSP's clients and their roles at accounts.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Enum, Object, OpenApi};

use super::body::JsonBody;
use super::text::{format, Text};
use super::params::{Limit, Time};
use super::ranged::Items;
use super::paging::Listing;
use super::security::{Auth, ContactsRead, ContactsWrite, Scopes};
use super::memo;
use super::wire::{given, patch, precondition, to_wire, Body, Created, EnumText, Fetched, IdempotencyKey, ListHeader, NoneMatch, Required, Tagged};
use super::ApiTags;
use crate::domain::contacts::{self as domain, ContactChanges, ContactFilter, LinkInput};
use crate::domain::events::Wire;
use crate::domain::{Crm, Tenant, Versioned};
use crate::envelope::List;
use crate::error::ApiError;
use crate::time::rfc3339;

/// What a contact is to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Owner,
    DecisionMaker,
    Billing,
    Technical,
    EndUser,
    Other,
}

impl From<domain::Role> for Role {
    fn from(r: domain::Role) -> Self {
        match r {
            domain::Role::Owner => Role::Owner,
            domain::Role::DecisionMaker => Role::DecisionMaker,
            domain::Role::Billing => Role::Billing,
            domain::Role::Technical => Role::Technical,
            domain::Role::EndUser => Role::EndUser,
            domain::Role::Other => Role::Other,
        }
    }
}

/// A contact's relationship with one account.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct AccountLink {
    /// `acc_…`
    pub account_id: String,
    pub role: Role,
    /// When the contact was linked to the account.
    pub linked_at: String,
}

/// A link to send: the account and the contact's role there.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAccountLink {
    /// An account (`acc_…`) of the same organization and environment.
    pub account_id: Text,
    pub role: EnumText<Role>,
}

/// A person at a client.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", example)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// `con_…`
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    /// Lower case; unique among your contacts.
    #[oai(nullable)]
    pub email: Option<String>,
    #[oai(nullable)]
    pub phone: Option<String>,
    /// Job title.
    #[oai(nullable)]
    pub title: Option<String>,
    #[oai(nullable)]
    pub notes: Option<String>,
    /// The accounts the contact belongs to, oldest link first.
    pub accounts: Vec<AccountLink>,
    pub created_at: String,
    pub updated_at: String,
}

impl Example for Contact {
    fn example() -> Self {
        Contact {
            id: "con_8Jd3kQm1xZp4rW7aL".into(),
            first_name: "Dana".into(),
            last_name: "Whitfield".into(),
            email: Some("dana@contosodental.com".into()),
            phone: Some("+1 207 555 0142".into()),
            title: Some("Practice manager".into()),
            notes: None,
            accounts: vec![AccountLink {
                account_id: "acc_5Hq2vWZk3nR8yT1bC".into(),
                role: Role::DecisionMaker,
                linked_at: "2024-05-01T09:31:02Z".into(),
            }],
            created_at: "2024-05-01T09:31:02Z".into(),
            updated_at: "2024-05-01T09:31:02Z".into(),
        }
    }
}

impl Wire for domain::Contact {
    fn wire(&self) -> serde_json::Value {
        to_wire(Contact::from(self.clone()))
    }
}

impl From<domain::Contact> for Contact {
    fn from(c: domain::Contact) -> Self {
        Contact {
            id: c.id,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone,
            title: c.title,
            notes: c.notes,
            accounts: c
                .accounts
                .into_iter()
                .map(|l| AccountLink { account_id: l.account_id, role: l.role.into(), linked_at: rfc3339(l.linked_at) })
                .collect(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A contact's links to accounts, as many as the domain keeps.
type Links = Items<NewAccountLink, 0, { crate::domain::contacts::LINKS_MAX }>;

fn link_inputs(links: Links) -> Vec<LinkInput> {
    links.into_iter().map(|l| LinkInput { account_id: l.account_id.into(), role: l.role.into_string() }).collect()
}

/// A new contact, optionally linked to accounts.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, skip_serializing_if_is_none, example)]
pub struct CreateContact {
    /// 1–100 characters.
    pub first_name: Required<Text<{ crate::domain::contacts::NAME_MAX }, { format::NON_BLANK }>>,
    /// 1–100 characters.
    pub last_name: Required<Text<{ crate::domain::contacts::NAME_MAX }, { format::NON_BLANK }>>,
    /// An empty string clears it, as `null` does.
    pub email: Option<Text<0, { format::EMAIL }>>,
    pub phone: Option<Text<{ crate::domain::contacts::PHONE_MAX }>>,
    pub title: Option<Text<{ crate::domain::contacts::TITLE_MAX }>>,
    pub notes: Option<Text<{ crate::domain::contacts::NOTES_MAX }>>,
    /// Accounts to link, each with the contact's role there (at most 50).
    pub accounts: Option<Links>,
}

impl Example for CreateContact {
    fn example() -> Self {
        CreateContact {
            first_name: Required(Some("Dana".into())),
            last_name: Required(Some("Whitfield".into())),
            email: Some("dana@contosodental.com".into()),
            phone: Some("+1 207 555 0142".into()),
            title: Some("Practice manager".into()),
            notes: None,
            accounts: Some(Items(vec![NewAccountLink { account_id: "acc_5Hq2vWZk3nR8yT1bC".into(), role: "DECISION_MAKER".into() }])),
        }
    }
}

impl From<CreateContact> for ContactChanges {
    fn from(b: CreateContact) -> Self {
        ContactChanges {
            first_name: given(b.first_name.0, Into::into),
            last_name: given(b.last_name.0, Into::into),
            email: given(b.email, Into::into),
            phone: given(b.phone, Into::into),
            title: given(b.title, Into::into),
            notes: given(b.notes, Into::into),
            accounts: given(b.accounts, link_inputs),
        }
    }
}

/// Changes to a contact: absent fields stay, `null` clears an optional field, and
/// `accounts` replaces every link (send `[]` to unlink all).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields, example)]
pub struct UpdateContact {
    pub first_name: MaybeUndefined<Text<{ crate::domain::contacts::NAME_MAX }, { format::NON_BLANK }>>,
    pub last_name: MaybeUndefined<Text<{ crate::domain::contacts::NAME_MAX }, { format::NON_BLANK }>>,
    /// An empty string clears it, as `null` does.
    #[oai(nullable)]
    pub email: MaybeUndefined<Text<0, { format::EMAIL }>>,
    #[oai(nullable)]
    pub phone: MaybeUndefined<Text<{ crate::domain::contacts::PHONE_MAX }>>,
    #[oai(nullable)]
    pub title: MaybeUndefined<Text<{ crate::domain::contacts::TITLE_MAX }>>,
    #[oai(nullable)]
    pub notes: MaybeUndefined<Text<{ crate::domain::contacts::NOTES_MAX }>>,
    pub accounts: MaybeUndefined<Links>,
}

impl Example for UpdateContact {
    fn example() -> Self {
        UpdateContact {
            first_name: MaybeUndefined::Undefined,
            last_name: MaybeUndefined::Undefined,
            email: MaybeUndefined::Undefined,
            phone: MaybeUndefined::Undefined,
            title: MaybeUndefined::Value("Operations director".into()),
            notes: MaybeUndefined::Undefined,
            accounts: MaybeUndefined::Undefined,
        }
    }
}

impl From<UpdateContact> for ContactChanges {
    fn from(b: UpdateContact) -> Self {
        ContactChanges {
            first_name: patch(b.first_name, Into::into),
            last_name: patch(b.last_name, Into::into),
            email: patch(b.email, Into::into),
            phone: patch(b.phone, Into::into),
            title: patch(b.title, Into::into),
            notes: patch(b.notes, Into::into),
            accounts: patch(b.accounts, link_inputs),
        }
    }
}

fn tagged(contact: domain::Contact) -> Tagged<Contact> {
    let tag = contact.etag();
    Tagged::new(contact.into(), &tag)
}

pub struct ContactsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Contacts")]
impl ContactsApi {
    /// List contacts
    ///
    /// Oldest first, a page at a time, each with its account relationships; filter by
    /// `accountId`, and by `updatedSince` for incremental sync.
    #[oai(path = "/contacts", method = "get", operation_id = "list_contacts")]
    async fn list_contacts(
        &self,
        #[oai(scope = "Scopes::ContactsRead")] auth: Auth<ContactsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// Only contacts linked to this account.
        #[oai(name = "accountId")]
        account_id: Query<Option<String>>,
        /// Page size, 1 to 100 (default 50).
        limit: Query<Option<Limit>>,
        /// `pagination.nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Only contacts changed at or after this RFC 3339 time.
        #[oai(name = "updatedSince")]
        updated_since: Query<Option<Time>>,
    ) -> Result<Body<List<Contact>>, ApiError> {
        let tenant = Tenant::from(&auth.principal);
        let listing = Listing::new(crm, "contacts", &tenant);
        let page = listing.request(limit.0, cursor.0.as_deref(), updated_since.0)?;
        let contacts = domain::list(crm, &tenant, &ContactFilter { account_id: account_id.0 }, &page).await?;
        Ok(Body(listing.respond(contacts, Contact::from)))
    }

    /// Create a contact
    ///
    /// Optionally linked to accounts of the same organization and environment, with a
    /// role at each.
    #[oai(path = "/contacts", method = "post", operation_id = "create_contact")]
    async fn create_contact(
        &self,
        #[oai(scope = "Scopes::ContactsWrite")] auth: Auth<ContactsWrite>,
        /// Makes a retry safe: a retry with the same key and body gets the first answer again.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<IdempotencyKey>>,
        Data(crm): Data<&Arc<Crm>>,
        body: JsonBody<CreateContact>,
    ) -> Result<Created<Contact>, ApiError> {
        let contact = domain::create(crm, &Tenant::from(&auth.principal), body.0.into()).await?;
        let (location, tag) = (format!("/api/v1/contacts/{}", contact.id), contact.etag());
        Ok(Created::new(contact.into(), location, &tag))
    }

    /// Get a contact
    ///
    /// With its account relationships.
    #[oai(path = "/contacts/:id", method = "get", operation_id = "get_contact")]
    async fn get_contact(
        &self,
        #[oai(scope = "Scopes::ContactsRead")] auth: Auth<ContactsRead>,
        Data(crm): Data<&Arc<Crm>>,
        /// The contact id, `con_…`.
        id: Path<String>,
        /// `ETag`s of versions the client holds: while one is current, the answer is a
        /// 304 without a body (compared weakly; `*` matches any version).
        #[oai(name = "If-None-Match")]
        if_none_match: ListHeader,
    ) -> Result<Fetched<Contact>, ApiError> {
        let held = NoneMatch::parse(if_none_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        memo::fetch(crm, "contact", &tenant, &id, &held, async { Ok(tagged(domain::get(crm, &tenant, &id).await?)) }).await
    }

    /// Update a contact
    ///
    /// A partial update; `accounts`, when sent, replaces every link. With `If-Match`,
    /// only if the contact is still at that version (412 otherwise).
    #[oai(path = "/contacts/:id", method = "patch", operation_id = "update_contact")]
    async fn update_contact(
        &self,
        #[oai(scope = "Scopes::ContactsWrite")] auth: Auth<ContactsWrite>,
        Data(crm): Data<&Arc<Crm>>,
        /// The contact id, `con_…`.
        id: Path<String>,
        /// An `ETag` of the contact: update only that version.
        #[oai(name = "If-Match")]
        if_match: ListHeader,
        body: JsonBody<UpdateContact>,
    ) -> Result<Tagged<Contact>, ApiError> {
        let precondition = precondition(if_match.0.as_deref())?;
        let tenant = Tenant::from(&auth.principal);
        Ok(tagged(domain::update(crm, &tenant, &id, body.0.into(), &precondition).await?))
    }
}

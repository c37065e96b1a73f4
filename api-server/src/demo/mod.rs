//! `breadbox demo`: a realistic data set for one organization and environment, written
//! through the same domain functions as the API (so it obeys every rule and emits the
//! same events). Deterministic: the same seed gives the same names, stages and numbers.

mod delivery;
mod growth;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::domain::accounts::{self, AccountChanges, SiteInput};
use crate::domain::contacts::{self, ContactChanges, LinkInput};
use crate::domain::deals::{self, DealChanges};
use crate::domain::{Crm, DomainError, Patch, Tenant};

/// The credential recorded as the author of demo changes.
const ACTOR: &str = "demo";
const DAY_MS: i64 = 86_400_000;

/// The UTC date (`YYYY-MM-DD`) of a Unix-ms time.
fn date(ms: i64) -> String {
    crate::time::rfc3339(ms)[..10].to_owned()
}

/// What `load` created.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Loaded {
    pub accounts: usize,
    pub contacts: usize,
    pub deals: usize,
    pub contracts: usize,
    pub devices: usize,
    pub health_signals: usize,
    pub touchpoints: usize,
    pub reconciliations: usize,
    pub leads: usize,
    pub compliance_items: usize,
    pub onboarding_projects: usize,
}

/// MSP clients: name, domain stem, industry, seats.
const COMPANIES: &[(&str, &str, &str)] = &[
    ("Harborview Family Dental", "harborviewdental", "Healthcare"),
    ("Cedar & Pine Law Group", "cedarpinelaw", "Legal"),
    ("Northgate Precision Machining", "northgatemachining", "Manufacturing"),
    ("Bluewater Credit Union", "bluewatercu", "Financial Services"),
    ("Summit Ridge Orthopedics", "summitridgeortho", "Healthcare"),
    ("Alder Street Accounting", "alderstreetcpa", "Accounting"),
    ("Ironclad Logistics", "ironcladlogistics", "Logistics"),
    ("Meadowbrook Veterinary Clinic", "meadowbrookvet", "Healthcare"),
    ("Westfield Architecture Studio", "westfieldarch", "Architecture"),
    ("Granite State Title", "granitestatetitle", "Real Estate"),
    ("Lakeshore Community School", "lakeshoreschool", "Education"),
    ("Copperline Electrical", "copperline", "Construction"),
    ("Redwood Wealth Partners", "redwoodwealth", "Financial Services"),
    ("Brightpath Home Health", "brightpathhh", "Healthcare"),
    ("Oakmont Insurance Agency", "oakmontins", "Insurance"),
    ("Pinecrest Dermatology", "pinecrestderm", "Healthcare"),
    ("Foundry Row Brewing", "foundryrow", "Hospitality"),
    ("Keystone Property Management", "keystonepm", "Real Estate"),
    ("Silverline Freight", "silverlinefreight", "Logistics"),
    ("Maple Hollow Senior Living", "maplehollow", "Healthcare"),
    ("Clearwater Environmental", "clearwaterenv", "Engineering"),
    ("Tidewater Marine Supply", "tidewatermarine", "Retail"),
    ("Beacon Hill Pediatrics", "beaconhillpeds", "Healthcare"),
    ("Stonebridge Capital", "stonebridgecap", "Financial Services"),
    ("Riverbend Public Library", "riverbendlibrary", "Public Sector"),
    ("Evergreen Landscape Design", "evergreenlandscape", "Services"),
    ("Highland Orthodontics", "highlandortho", "Healthcare"),
    ("Quarry Lane Fabrication", "quarrylanefab", "Manufacturing"),
    ("Fairhaven Physical Therapy", "fairhavenpt", "Healthcare"),
    ("Crescent City Realty", "crescentrealty", "Real Estate"),
    ("Birchwood Charter Academy", "birchwoodacademy", "Education"),
    ("Anchor Point Engineering", "anchorpointeng", "Engineering"),
    ("Lumen Eye Associates", "lumeneye", "Healthcare"),
    ("Ridgeway Auto Group", "ridgewayauto", "Automotive"),
    ("Sterling & Marsh CPAs", "sterlingmarsh", "Accounting"),
    ("Prairie Wind Cooperative", "prairiewind", "Agriculture"),
];

const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Tom", "Priya", "Daniel", "Chen", "Olivia", "Marcus", "Sofia", "Ethan", "Grace",
    "Luis", "Hannah", "Noah", "Fatima", "Ryan", "Emily", "Kenji", "Laura",
];
const LAST_NAMES: &[&str] = &[
    "Alvarez", "Brennan", "Okafor", "Lindqvist", "Patel", "Kowalski", "Nguyen", "Fischer", "Reyes", "Murphy",
    "Tanaka", "Hughes", "Schmidt", "Costa", "Bailey", "Haddad", "Walsh", "Moreau",
];
/// Job title and the role at the account that goes with it.
const TITLES: &[(&str, &str)] = &[
    ("Owner", "OWNER"),
    ("Practice Manager", "DECISION_MAKER"),
    ("Office Manager", "DECISION_MAKER"),
    ("Controller", "BILLING"),
    ("IT Coordinator", "TECHNICAL"),
    ("Operations Lead", "END_USER"),
];
const CITIES: &[&str] =
    &["Portland, ME", "Burlington, VT", "Albany, NY", "Hartford, CT", "Providence, RI", "Worcester, MA", "Nashua, NH"];
const DEALS: &[(&str, i64)] = &[
    ("Managed security upgrade", 1_250_000),
    ("Microsoft 365 migration", 680_000),
    ("Backup and disaster recovery", 420_000),
    ("Firewall refresh", 910_000),
    ("VoIP rollout", 370_000),
    ("Co-managed IT agreement", 2_400_000),
    ("Endpoint detection and response", 540_000),
    ("Network cabling for new office", 1_580_000),
];
const STAGES: &[&str] = &["DISCOVERY", "ASSESSMENT", "PROPOSAL", "NEGOTIATION", "WON", "LOST"];
const LIFECYCLES: &[&str] = &["ACTIVE", "ACTIVE", "ACTIVE", "ONBOARDING", "AT_RISK", "LEAD", "CHURNED"];
const LOSS_REASONS: &[&str] = &["Chose a cheaper provider", "Budget frozen until next year", "Stayed with in-house IT"];

/// Loads the demo data set into `tenant`, from `seed`.
pub async fn load(crm: &Crm, tenant: &Tenant, seed: u64) -> Result<Loaded, DomainError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut loaded = Loaded::default();
    // A suffix keeps domains and e-mails unique when the demo is loaded twice.
    let run: u32 = rng.gen_range(1000..10000);
    for (index, (name, stem, industry)) in COMPANIES.iter().enumerate() {
        let lifecycle = LIFECYCLES[index % LIFECYCLES.len()];
        let sites = (0..rng.gen_range(1..=3))
            .map(|n| SiteInput {
                name: if n == 0 { "Headquarters".to_owned() } else { format!("Branch {n}") },
                address: Some(format!("{} Main Street, {}", rng.gen_range(10..999), CITIES.choose(&mut rng).unwrap_or(&"Boston, MA"))),
            })
            .collect();
        let account = accounts::create(
            crm,
            tenant,
            AccountChanges {
                name: Patch::Set((*name).to_owned()),
                domain: Patch::Set(format!("{stem}-{run}.example")),
                industry: Patch::Set((*industry).to_owned()),
                lifecycle: Patch::Set(lifecycle.to_owned()),
                sites: Patch::Set(sites),
                seats: Patch::Set(rng.gen_range(8..180)),
                ..Default::default()
            },
        )
        .await?;
        loaded.accounts += 1;

        let mut primary = None;
        for n in 0..rng.gen_range(2..=4) {
            let first = FIRST_NAMES.choose(&mut rng).unwrap_or(&"Alex");
            let last = LAST_NAMES.choose(&mut rng).unwrap_or(&"Smith");
            let (title, role) = TITLES[(index + n) % TITLES.len()];
            let contact = contacts::create(
                crm,
                tenant,
                ContactChanges {
                    first_name: Patch::Set((*first).to_owned()),
                    last_name: Patch::Set((*last).to_owned()),
                    email: Patch::Set(format!("{}.{}{n}@{stem}-{run}.example", first.to_lowercase(), last.to_lowercase())),
                    phone: Patch::Set(format!("+1 555 {:03} {:04}", rng.gen_range(100..999), rng.gen_range(0..9999))),
                    title: Patch::Set(title.to_owned()),
                    accounts: Patch::Set(vec![LinkInput { account_id: account.id.clone(), role: role.to_owned() }]),
                    ..Default::default()
                },
            )
            .await?;
            primary.get_or_insert(contact.id);
            loaded.contacts += 1;
        }
        if let Some(contact_id) = &primary {
            let changes = AccountChanges { primary_contact_id: Patch::Set(contact_id.clone()), ..Default::default() };
            accounts::update(crm, tenant, &account.id, changes, &Default::default()).await?;
        }
        delivery::load_account(crm, tenant, &account, primary.as_deref(), &mut rng, &mut loaded).await?;
        growth::load_account(crm, tenant, &account, &mut rng, &mut loaded).await?;

        // Every stage appears: account i has a deal in stage i mod 6, some have two.
        for n in 0..if index % 3 == 0 { 2 } else { 1 } {
            let (title, amount) = DEALS[(index + n) % DEALS.len()];
            let stage = STAGES[(index + n * 3) % STAGES.len()];
            let reason = match stage {
                "LOST" => Patch::Set(LOSS_REASONS.choose(&mut rng).unwrap_or(&"No decision").to_string()),
                "WON" => Patch::Set("Best response time and local presence".to_owned()),
                _ => Patch::Keep,
            };
            deals::create(
                crm,
                tenant,
                DealChanges {
                    account_id: Patch::Set(account.id.clone()),
                    name: Patch::Set(title.to_owned()),
                    stage: Patch::Set(stage.to_owned()),
                    amount: Patch::Set(amount + rng.gen_range(0..50) * 10_000),
                    expected_close_date: Patch::Set(format!("2027-{:02}-{:02}", rng.gen_range(1..=12), rng.gen_range(1..=28))),
                    outcome_reason: reason,
                    ..Default::default()
                },
                ACTOR,
            )
            .await?;
            loaded.deals += 1;
        }
    }
    growth::load_leads(crm, tenant, run, &mut rng, &mut loaded).await?;
    Ok(loaded)
}

//! The demo's pipeline and assurance records: leads with their ICP scores, compliance
//! items per framework, and onboarding projects of new clients.

use rand::rngs::StdRng;
use rand::Rng;

use breadbox_auth::db::now_ms;

use super::{date, Loaded, DAY_MS};
use crate::domain::accounts::Account;
use crate::domain::compliance::{self, ItemChanges};
use crate::domain::leads::{self, LeadChanges};
use crate::domain::onboarding::{self, MilestoneInput, NewProject};
use crate::domain::{Crm, DomainError, Patch, Tenant};

/// Prospects: company, industry, employees, source.
const LEADS: &[(&str, &str, i64, &str)] = &[
    ("Willow Creek Family Practice", "HEALTHCARE", 45, "REFERRAL"),
    ("Baxter & Lowe Attorneys", "LEGAL", 80, "INBOUND"),
    ("Pioneer Tool & Die", "MANUFACTURING", 120, "EVENT"),
    ("Harbor Lights Credit Union", "FINANCIAL_SERVICES", 210, "PARTNER"),
    ("Greenleaf Nonprofit Alliance", "NONPROFIT", 18, "INBOUND"),
    ("Cobalt Software Labs", "TECHNOLOGY", 35, "OUTBOUND"),
    ("Milltown Public Schools", "EDUCATION", 900, "OTHER"),
    ("Summit Peak Realty", "REAL_ESTATE", 12, "REFERRAL"),
    ("Northline Construction", "CONSTRUCTION", 65, "OUTBOUND"),
    ("Oak & Iron Accounting", "ACCOUNTING", 28, "PARTNER"),
];
const STATUSES: &[&str] = &["NEW", "CONTACTED", "QUALIFIED", "DISQUALIFIED", "CONVERTED"];
/// Controls per framework: framework, control id, title.
const CONTROLS: &[(&str, &str, &str)] = &[
    ("HIPAA", "164.308(a)(1)", "Security management process"),
    ("HIPAA", "164.312(a)(2)(iv)", "Encryption of ePHI at rest"),
    ("CIS", "CIS-4.1", "Secure configuration process"),
    ("CIS", "CIS-6.3", "MFA for externally exposed applications"),
    ("SOC2", "CC6.1", "Logical access security"),
    ("NIST_CSF", "PR.DS-1", "Data-at-rest is protected"),
];
const ITEM_STATUSES: &[&str] = &["COMPLIANT", "COMPLIANT", "IN_PROGRESS", "NON_COMPLIANT", "NOT_APPLICABLE"];
const MILESTONES: &[&str] =
    &["Kick-off call", "Documentation and credentials", "RMM agent rollout", "Backup configured", "Security baseline", "Handover"];

/// Leads, each with a domain unique to this load (`run`).
pub async fn load_leads(crm: &Crm, tenant: &Tenant, run: u32, rng: &mut StdRng, loaded: &mut Loaded) -> Result<(), DomainError> {
    for (n, (company, industry, employees, source)) in LEADS.iter().enumerate() {
        let stem: String = company.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase();
        leads::create(
            crm,
            tenant,
            LeadChanges {
                company_name: Patch::Set((*company).to_owned()),
                domain: Patch::Set(format!("{stem}-{run}.example")),
                industry: Patch::Set((*industry).to_owned()),
                employee_count: Patch::Set(*employees),
                seat_estimate: Patch::Set(employees * rng.gen_range(8..12) / 10),
                source: Patch::Set((*source).to_owned()),
                status: Patch::Set(STATUSES[n % STATUSES.len()].to_owned()),
                contact_name: Patch::Set("Jordan Ellis".to_owned()),
                contact_email: Patch::Set(format!("jordan@{stem}-{run}.example")),
                notes: Patch::Keep,
            },
        )
        .await?;
        loaded.leads += 1;
    }
    Ok(())
}

/// Compliance items for accounts in regulated industries, and an onboarding project for
/// accounts being onboarded.
pub async fn load_account(crm: &Crm, tenant: &Tenant, account: &Account, rng: &mut StdRng, loaded: &mut Loaded) -> Result<(), DomainError> {
    let now = now_ms();
    if matches!(account.industry.as_deref(), Some("Healthcare" | "Financial Services" | "Legal" | "Accounting")) {
        for (n, (framework, control, title)) in CONTROLS.iter().enumerate() {
            compliance::create(
                crm,
                tenant,
                ItemChanges {
                    account_id: Patch::Set(account.id.clone()),
                    framework: Patch::Set((*framework).to_owned()),
                    control_id: Patch::Set((*control).to_owned()),
                    title: Patch::Set((*title).to_owned()),
                    status: Patch::Set(ITEM_STATUSES[(n + loaded.accounts) % ITEM_STATUSES.len()].to_owned()),
                    evidence_notes: Patch::Set("Reviewed in the last QBR.".to_owned()),
                    due_date: Patch::Set(date(now + rng.gen_range(10..120) * DAY_MS)),
                    last_reviewed_at: Patch::Set(crate::time::rfc3339(now - rng.gen_range(5..90) * DAY_MS)),
                },
            )
            .await?;
            loaded.compliance_items += 1;
        }
    }
    if account.lifecycle.as_str() == "ONBOARDING" {
        let start = now - rng.gen_range(5..30) * DAY_MS;
        let milestones = MILESTONES
            .iter()
            .enumerate()
            .map(|(n, name)| MilestoneInput { name: Some((*name).to_owned()), due_date: Some(date(start + (n as i64 + 1) * 7 * DAY_MS)) })
            .collect();
        let project = onboarding::create(
            crm,
            tenant,
            NewProject {
                account_id: Some(account.id.clone()),
                name: Some(format!("Onboarding {}", account.name)),
                start_date: Some(date(start)),
                target_date: Some(date(start + 45 * DAY_MS)),
                notes: None,
                milestones: Some(milestones),
            },
        )
        .await?;
        loaded.onboarding_projects += 1;
        let done = rng.gen_range(1..4);
        for milestone in project.milestones.iter().take(done) {
            onboarding::complete(crm, tenant, &project.project.id, &milestone.id, super::ACTOR).await?;
        }
    }
    Ok(())
}

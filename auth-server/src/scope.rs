//! The scope table of the product document, as a bit set with its implications.

use std::fmt;

/// One scope of the product's scope table, plus `admin:write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Scope {
    AccountsRead,
    AccountsWrite,
    ContactsRead,
    ContactsWrite,
    ContractsRead,
    DealsRead,
    DealsWrite,
    HealthRead,
    HealthWrite,
    TouchpointsRead,
    TouchpointsWrite,
    DevicesRead,
    DevicesWrite,
    ReconciliationRead,
    ReconciliationWrite,
    MrrRead,
    LeadsRead,
    LeadsWrite,
    ComplianceRead,
    OnboardingRead,
    AdminRead,
    AdminWrite,
}

impl Scope {
    pub const ALL: [Scope; 22] = [
        Scope::AccountsRead,
        Scope::AccountsWrite,
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::ContractsRead,
        Scope::DealsRead,
        Scope::DealsWrite,
        Scope::HealthRead,
        Scope::HealthWrite,
        Scope::TouchpointsRead,
        Scope::TouchpointsWrite,
        Scope::DevicesRead,
        Scope::DevicesWrite,
        Scope::ReconciliationRead,
        Scope::ReconciliationWrite,
        Scope::MrrRead,
        Scope::LeadsRead,
        Scope::LeadsWrite,
        Scope::ComplianceRead,
        Scope::OnboardingRead,
        Scope::AdminRead,
        Scope::AdminWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AccountsRead => "accounts:read",
            Scope::AccountsWrite => "accounts:write",
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::ContractsRead => "contracts:read",
            Scope::DealsRead => "deals:read",
            Scope::DealsWrite => "deals:write",
            Scope::HealthRead => "health:read",
            Scope::HealthWrite => "health:write",
            Scope::TouchpointsRead => "touchpoints:read",
            Scope::TouchpointsWrite => "touchpoints:write",
            Scope::DevicesRead => "devices:read",
            Scope::DevicesWrite => "devices:write",
            Scope::ReconciliationRead => "reconciliation:read",
            Scope::ReconciliationWrite => "reconciliation:write",
            Scope::MrrRead => "mrr:read",
            Scope::LeadsRead => "leads:read",
            Scope::LeadsWrite => "leads:write",
            Scope::ComplianceRead => "compliance:read",
            Scope::OnboardingRead => "onboarding:read",
            Scope::AdminRead => "admin:read",
            Scope::AdminWrite => "admin:write",
        }
    }

    /// What the scope grants, as the product document words it.
    pub fn description(self) -> &'static str {
        match self {
            Scope::AccountsRead => "Read accounts, sites, account details",
            Scope::AccountsWrite => "Create and update accounts (implies accounts:read)",
            Scope::ContactsRead => "Read contacts and account relationships",
            Scope::ContactsWrite => "Create and update contacts",
            Scope::ContractsRead => "Read contracts, service lines, amendments",
            Scope::DealsRead => "Read pipeline deals and stages",
            Scope::DealsWrite => "Create and update deals, change stages",
            Scope::HealthRead => "Read health scores and signal breakdowns",
            Scope::HealthWrite => "Push external health signals",
            Scope::TouchpointsRead => "Read touchpoints and QBR records",
            Scope::TouchpointsWrite => "Log touchpoints from external tools",
            Scope::DevicesRead => "Read device inventory",
            Scope::DevicesWrite => "Push/update device data from RMM",
            Scope::ReconciliationRead => "Read reconciliation records",
            Scope::ReconciliationWrite => "Submit seat/device count reports",
            Scope::MrrRead => "Read MRR data and financial summaries",
            Scope::LeadsRead => "Read leads and ICP scores",
            Scope::LeadsWrite => "Create and update leads",
            Scope::ComplianceRead => "Read compliance items and framework status",
            Scope::OnboardingRead => "Read onboarding projects and milestones",
            Scope::AdminRead => "Implies all :read scopes — use for full integrations",
            Scope::AdminWrite => "Manage keys, clients and webhook endpoints (implies every scope)",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u32 {
        1 << (self as u8)
    }

    fn is_read(self) -> bool {
        self.as_str().ends_with(":read")
    }

    /// The scopes this one grants besides itself.
    fn implied(self) -> ScopeSet {
        match self {
            Scope::AdminWrite => ScopeSet::all(),
            Scope::AdminRead => ScopeSet::all_reads(),
            Scope::AccountsWrite => ScopeSet::of(&[Scope::AccountsRead]),
            Scope::ContactsWrite => ScopeSet::of(&[Scope::ContactsRead]),
            Scope::DealsWrite => ScopeSet::of(&[Scope::DealsRead]),
            Scope::HealthWrite => ScopeSet::of(&[Scope::HealthRead]),
            Scope::TouchpointsWrite => ScopeSet::of(&[Scope::TouchpointsRead]),
            Scope::DevicesWrite => ScopeSet::of(&[Scope::DevicesRead]),
            Scope::ReconciliationWrite => ScopeSet::of(&[Scope::ReconciliationRead]),
            Scope::LeadsWrite => ScopeSet::of(&[Scope::LeadsRead]),
            _ => ScopeSet::empty(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes. `granted` sets hold what a credential was given; `effective()`
/// adds everything those imply.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

impl ScopeSet {
    pub const fn empty() -> Self {
        ScopeSet(0)
    }

    pub fn all() -> Self {
        ScopeSet::of(&Scope::ALL)
    }

    pub fn all_reads() -> Self {
        Scope::ALL.into_iter().filter(|s| s.is_read()).collect()
    }

    /// Every scope of the product's table (everything but `admin:write`): the `full_access` preset.
    pub fn full_access() -> Self {
        Scope::ALL.into_iter().filter(|s| *s != Scope::AdminWrite).collect()
    }

    /// The `read_only` preset: `admin:read`.
    pub fn read_only() -> Self {
        ScopeSet::of(&[Scope::AdminRead])
    }

    pub fn of(scopes: &[Scope]) -> Self {
        scopes.iter().copied().collect()
    }

    /// Parses a space-separated list (RFC 6749 §3.3). Empty input gives the empty set.
    pub fn parse(s: &str) -> Result<Self, UnknownScope> {
        s.split_ascii_whitespace()
            .map(|part| Scope::parse(part).ok_or_else(|| UnknownScope(part.to_owned())))
            .collect()
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// This set with every implied scope added.
    pub fn effective(self) -> ScopeSet {
        self.iter().fold(self, |acc, s| acc.union(s.implied()))
    }

    /// Whether a credential granted this set may act with `scope`.
    pub fn allows(self, scope: Scope) -> bool {
        self.effective().contains(scope)
    }

    /// Whether a credential granted this set may grant `other` (to a key or client it creates).
    pub fn covers(self, other: ScopeSet) -> bool {
        other.is_subset(self.effective())
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The set as a number (one bit per scope), e.g. to key a cache by.
    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn to_vec(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::empty();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

/// Space-separated, in table order — the form of the `scope` claim and response field.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read_and_admin_read_implies_every_read() {
        let set = ScopeSet::of(&[Scope::AccountsWrite]);
        assert!(set.allows(Scope::AccountsRead));
        assert!(!set.allows(Scope::ContactsRead));
        let admin = ScopeSet::read_only();
        assert!(admin.allows(Scope::MrrRead) && admin.allows(Scope::OnboardingRead));
        assert!(!admin.allows(Scope::AccountsWrite));
        assert!(ScopeSet::of(&[Scope::AdminWrite]).allows(Scope::DevicesWrite));
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        let set = ScopeSet::parse("deals:write  accounts:read").unwrap();
        assert_eq!(set.to_string(), "accounts:read deals:write");
        assert_eq!(ScopeSet::parse("accounts:delete"), Err(UnknownScope("accounts:delete".into())));
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn covers_uses_implications() {
        assert!(ScopeSet::read_only().covers(ScopeSet::of(&[Scope::DealsRead])));
        assert!(!ScopeSet::full_access().covers(ScopeSet::of(&[Scope::AdminWrite])));
    }
}

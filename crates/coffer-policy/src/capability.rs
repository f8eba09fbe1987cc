//! Capabilities, compact capability sets and request operations.

use std::fmt;
use std::str::FromStr;

/// One capability a policy rule may grant (or, for `Deny`, forbid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `create`: write data where none exists (POST/PUT).
    Create,
    /// `read`: read data (GET).
    Read,
    /// `update`: change existing data (POST/PUT).
    Update,
    /// `patch`: partially change existing data (PATCH).
    Patch,
    /// `delete`: delete data (DELETE).
    Delete,
    /// `list`: list keys (LIST).
    List,
    /// `sudo`: access to root-protected paths.
    Sudo,
    /// `deny`: forbids everything, `sudo` included.
    Deny,
}

impl Capability {
    /// Every capability, in Vault's documentation order (also the canonical
    /// order used when formatting policies).
    pub const ALL: [Capability; 8] = [
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Deny,
    ];

    /// The lowercase name used in policies and API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Deny => "deny",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a capability name is not one of the eight known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCapability;

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownCapability)
    }
}

/// A set of capabilities packed in a `u16`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilitySet(u16);

impl CapabilitySet {
    /// The empty set.
    pub const fn empty() -> Self {
        CapabilitySet(0)
    }

    /// Every granting capability (all but `deny`): what root holds.
    pub fn all_grants() -> Self {
        Capability::ALL
            .into_iter()
            .filter(|c| *c != Capability::Deny)
            .collect()
    }

    /// Whether the set holds `cap`.
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Adds `cap` to the set.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bit();
    }

    /// The union of two sets.
    pub fn union(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the set holds `deny` (which overrides every other member).
    pub fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    /// The members, in [`Capability::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// The member names sorted alphabetically, as Vault's
    /// `sys/capabilities*` endpoints return them.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.iter().map(Capability::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl From<Capability> for CapabilitySet {
    fn from(cap: Capability) -> Self {
        CapabilitySet(cap.bit())
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = CapabilitySet::empty();
        for cap in iter {
            set.insert(cap);
        }
        set
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The operation a request performs, as the ACL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read (GET); needs `read`.
    Read,
    /// Create (POST/PUT where nothing exists); needs `create`.
    Create,
    /// Update (POST/PUT on existing data); needs `update`.
    Update,
    /// Patch (PATCH); needs `patch`.
    Patch,
    /// Delete (DELETE); needs `delete`.
    Delete,
    /// List (LIST); needs `list`.
    List,
}

impl Operation {
    /// The capability this operation requires.
    pub fn required_capability(self) -> Capability {
        match self {
            Operation::Read => Capability::Read,
            Operation::Create => Capability::Create,
            Operation::Update => Capability::Update,
            Operation::Patch => Capability::Patch,
            Operation::Delete => Capability::Delete,
            Operation::List => Capability::List,
        }
    }

    /// Whether parameter constraints apply to this operation (as in Vault:
    /// read, create, update and patch; not list or delete).
    pub fn checks_parameters(self) -> bool {
        matches!(
            self,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        )
    }
}

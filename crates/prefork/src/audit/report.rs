//! The result of one audit, and the listing `plexer audit-fds` prints.

use std::fmt;

use nix::unistd::Pid;

use super::descriptor::Descriptor;
use super::finding::Finding;
use super::policy::AuditPolicy;

/// Every open descriptor of one process, classified, and the database handles among them.
#[derive(Clone, Debug)]
pub struct AuditReport {
    pid: Pid,
    descriptors: Vec<Descriptor>,
    findings: Vec<Finding>,
    policy: AuditPolicy,
}

impl AuditReport {
    pub(crate) fn new(
        pid: Pid,
        descriptors: Vec<Descriptor>,
        findings: Vec<Finding>,
        policy: &AuditPolicy,
    ) -> Self {
        AuditReport {
            pid,
            descriptors,
            findings,
            policy: policy.clone(),
        }
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The database handles a fork would hand to every child, in descriptor order.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    pub fn into_findings(self) -> Vec<Finding> {
        self.findings
    }

    /// Every descriptor that was open, in descriptor order.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }

    /// No database handle would be inherited.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One line per descriptor; findings carry their message, descriptors the policy allowed say so.
impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for descriptor in &self.descriptors {
            write!(f, "{descriptor}")?;
            if let Some(finding) = self.findings.iter().find(|x| x.fd() == descriptor.fd()) {
                write!(f, "  FINDING: {finding}")?;
            } else if self.policy.is_allowed(descriptor.fd()) {
                f.write_str("  (allowed by policy)")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

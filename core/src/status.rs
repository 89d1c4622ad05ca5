//! How a scan ended: the one vocabulary the runner records, the store keeps,
//! and the report, metrics and `tillsyn subject` read back.

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Still running (or interrupted, until the store is reopened).
    Running,
    /// Read everything.
    Complete,
    /// Finished, but some places could not be read.
    Partial,
    /// Did not finish.
    Failed,
}

impl ScanStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Running => "running",
            ScanStatus::Complete => "complete",
            ScanStatus::Partial => "partial",
            ScanStatus::Failed => "failed",
        }
    }

    /// The stored spelling back; anything unknown reads as failed, so a
    /// damaged row never passes for a clean scan.
    pub fn parse(text: &str) -> ScanStatus {
        match text {
            "running" => ScanStatus::Running,
            "complete" => ScanStatus::Complete,
            "partial" => ScanStatus::Partial,
            _ => ScanStatus::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reads_as_failed() {
        for status in [
            ScanStatus::Running,
            ScanStatus::Complete,
            ScanStatus::Partial,
            ScanStatus::Failed,
        ] {
            assert_eq!(ScanStatus::parse(status.as_str()), status);
        }
        assert_eq!(ScanStatus::parse("Complete"), ScanStatus::Failed);
    }
}

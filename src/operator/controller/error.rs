//! What a reconcile can fail on: the step it was taking ([`Step`], the `error` label of
//! `reconcile_errors_total`) and the object, in words (the log line and the requeue reason).

/// The steps of both controllers that call the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    // The FileIntegrity controller.
    ReadConfig,
    ReadUserConfig,
    ReadDaemonSet,
    ReadPriorityClass,
    ListPools,
    ReadRbac,
    ApplyRbac,
    ApplyConfig,
    RecordReinit,
    ApplyDaemonSet,
    TakeOverDaemonSet,
    SweepUpstream,
    DeleteStale,
    MarkSilent,
    WriteStatus,
    // The results controller.
    ReadOwner,
    ReadResult,
    ReadNodeStatus,
    ReadWriterPod,
    RecordAccept,
    WriteAcceptedHistory,
    WriteFailureReport,
    WriteNodeStatus,
    DeleteResult,
}

impl Step {
    pub fn metric_label(self) -> &'static str {
        match self {
            Step::ReadConfig => "read_config",
            Step::ReadUserConfig => "read_user_config",
            Step::ReadDaemonSet => "read_daemonset",
            Step::ReadPriorityClass => "read_priority_class",
            Step::ListPools => "list_machine_config_pools",
            Step::ReadRbac => "read_rbac",
            Step::ApplyRbac => "apply_rbac",
            Step::ApplyConfig => "apply_config",
            Step::RecordReinit => "record_reinit",
            Step::ApplyDaemonSet => "apply_daemonset",
            Step::TakeOverDaemonSet => "take_over_daemonset",
            Step::SweepUpstream => "sweep_upstream",
            Step::DeleteStale => "delete_stale",
            Step::MarkSilent => "mark_silent",
            Step::WriteStatus => "write_status",
            Step::ReadOwner => "read_owner",
            Step::ReadResult => "read_result",
            Step::ReadNodeStatus => "read_node_status",
            Step::ReadWriterPod => "read_writer_pod",
            Step::RecordAccept => "record_accept",
            Step::WriteAcceptedHistory => "write_accepted_history",
            Step::WriteFailureReport => "write_failure_report",
            Step::WriteNodeStatus => "write_node_status",
            Step::DeleteResult => "delete_result",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed; `what` names the object, in words.
    #[error("{what}: {source}")]
    Kube {
        step: Step,
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A task of the operator's own failed (a panic in a blocking task).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The `error` label of `reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { step, .. } => step.metric_label(),
            Error::Internal(_) => "internal",
        }
    }

    /// A write lost a race against another writer: retry at once with fresh data.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }

    /// A conditional write planned from a stale copy: a conflict, or a replace of an object
    /// deleted meanwhile.
    pub(crate) fn is_stale_write(&self) -> bool {
        self.is_conflict()
            || matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

/// Attach the step and the object to a kube error.
pub(crate) trait KubeContext<T> {
    fn ctx(self, step: Step, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KubeContext<T> for Result<T, kube::Error> {
    fn ctx(self, step: Step, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            step,
            what: what(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_names_the_step_and_the_message_the_object() {
        let refused = kube::Error::Api(Box::new(
            kube::core::Status::failure("denied by policy", "Invalid").with_code(422),
        ));
        let e = Err::<(), _>(refused)
            .ctx(Step::ApplyDaemonSet, || {
                "applying DaemonSet ns/aide-fi".into()
            })
            .unwrap_err();
        assert_eq!(e.metric_label(), "apply_daemonset");
        assert!(
            e.to_string().starts_with("applying DaemonSet ns/aide-fi: "),
            "{e}"
        );
        assert!(!e.is_conflict() && !e.is_stale_write());
        assert_eq!(Error::Internal("panic".into()).metric_label(), "internal");
    }
}

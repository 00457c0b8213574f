//! The standard gRPC services every tessera server offers beside its own:
//! health checking (`grpc.health.v1`) and server reflection (`v1` and the
//! older `v1alpha` that many tools still ask for), so that the tooling city
//! IT teams already run (grpcurl, grpc_health_probe, load balancers) works
//! unchanged. They sit behind the same mutual TLS and authorization layer
//! as everything else: any enrolled caller may use them.

use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::allowed::Allowed;

/// `grpc.health.v1.Health/Check`.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `grpc.health.v1.Health/Watch`.
pub const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";
/// Server reflection, v1.
pub const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/// Server reflection, v1alpha.
pub const REFLECTION_V1ALPHA: &str =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// The authorization-table entries of the standard services, for every
/// service's table.
pub const ENTRIES: [(&str, Allowed); 4] = [
    (HEALTH_CHECK, Allowed::AnyEnrolled),
    (HEALTH_WATCH, Allowed::AnyEnrolled),
    (REFLECTION_V1, Allowed::AnyEnrolled),
    (REFLECTION_V1ALPHA, Allowed::AnyEnrolled),
];

/// Why the standard services could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the server reflection service: {0}")]
pub struct StandardError(#[from] tonic_reflection::server::Error);

/// What a server's health checks answer: for its own service (the calls
/// it serves at all), for the server as a whole (the empty service name)
/// and, on a server that keeps writes apart, for its writes.
#[derive(Debug, Clone)]
pub struct Health {
    reporter: HealthReporter,
    service: &'static str,
    writes: Option<&'static str>,
}

fn status(serving: bool) -> tonic_health::ServingStatus {
    if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

impl Health {
    /// Answers SERVING, or NOT_SERVING (for instance while shutting down),
    /// for every name.
    pub async fn serving(&self, serving: bool) {
        for name in [Some(self.service), Some(""), self.writes]
            .into_iter()
            .flatten()
        {
            self.reporter
                .set_service_status(name, status(serving))
                .await;
        }
    }

    /// Says whether the server takes writes: the writes name and the server
    /// as a whole (`""`) follow; the service's own name, which reads and
    /// status checks go by, is left as it is.
    pub async fn writable(&self, writable: bool) {
        for name in [Some(""), self.writes].into_iter().flatten() {
            self.reporter
                .set_service_status(name, status(writable))
                .await;
        }
    }
}

/// Health checking and reflection for a server whose own service is
/// `service` (a full name such as `tessera.v1.Gateway`): routes to serve
/// beside it, and the [`Health`] through which the server says whether it
/// is serving. It starts as not serving.
pub async fn routes(service: &'static str) -> Result<(Health, Routes), StandardError> {
    routes_with(service, None).await
}

/// [`routes`] for a server whose writes can stop while its reads go on (a
/// node whose disk is full): `writes` is the health-check name of its
/// writes ([`Health::writable`]).
pub async fn routes_with_writes(
    service: &'static str,
    writes: &'static str,
) -> Result<(Health, Routes), StandardError> {
    routes_with(service, Some(writes)).await
}

async fn routes_with(
    service: &'static str,
    writes: Option<&'static str>,
) -> Result<(Health, Routes), StandardError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let status = Health {
        reporter,
        service,
        writes,
    };
    status.serving(false).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tessera_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(service)
            .with_service_name("grpc.health.v1.Health")
    };
    let routes = Routes::new(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    Ok((status, routes))
}

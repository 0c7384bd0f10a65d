//! The operational endpoints an orchestrator probes: `/healthz` and `/readyz`, part of the
//! OpenAPI document like every other operation.

use std::time::Duration;

use larder_api_common::ErrorCode;
use larder_cache::CacheKind;
use larder_tenancy::Tenancy;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};

#[derive(Tags)]
enum Tag {
    /// For load balancers and orchestrators: is the process up, can it serve.
    Operations,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum HealthState {
    Ok,
}

/// The process is up.
#[derive(Debug, Object)]
pub struct Health {
    pub status: HealthState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReadyState {
    Ready,
}

/// Whether one dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CheckState {
    Ok,
    Down,
}

impl From<bool> for CheckState {
    fn from(up: bool) -> Self {
        if up { CheckState::Ok } else { CheckState::Down }
    }
}

/// What the service depends on, and whether each answers; `redis` is there when Redis is
/// configured.
#[derive(Debug, Object)]
pub struct Checks {
    pub database: CheckState,
    #[oai(skip_serializing_if_is_none)]
    pub redis: Option<CheckState>,
}

#[derive(Debug, Object)]
pub struct Readiness {
    pub status: ReadyState,
    pub checks: Checks,
}

/// Not ready: the shared error body, with the checks.
#[derive(Debug, Object)]
pub struct NotReady {
    pub code: ErrorCode,
    pub message: String,
    pub checks: Checks,
}

#[derive(Debug, ApiResponse)]
pub enum HealthAnswer {
    /// The process runs.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

#[derive(Debug, ApiResponse)]
pub enum ReadyAnswer {
    /// The database (and Redis, when configured) answer: send traffic.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Something the service needs does not answer; the message names it.
    #[oai(status = 503)]
    NotReady(Json<NotReady>),
}

/// `/healthz` and `/readyz`.
#[derive(Debug)]
pub struct OperationsApi {
    pub tenancy: Tenancy,
}

#[OpenApi(tag = "Tag::Operations")]
impl OperationsApi {
    /// Is the process up
    ///
    /// 200 while the process runs; it checks nothing else.
    #[oai(path = "/healthz", method = "get", operation_id = "getHealth")]
    async fn healthz(&self) -> HealthAnswer {
        HealthAnswer::Ok(Json(Health {
            status: HealthState::Ok,
        }))
    }

    /// Can it serve
    ///
    /// 200 when the database (and Redis, if configured) answer within 2 seconds; else 503
    /// naming what is down.
    #[oai(path = "/readyz", method = "get", operation_id = "getReadiness")]
    async fn readyz(&self) -> ReadyAnswer {
        const TIMEOUT: Duration = Duration::from_secs(2);
        let database = matches!(
            tokio::time::timeout(TIMEOUT, self.tenancy.store().ping()).await,
            Ok(Ok(()))
        );
        let cache = self.tenancy.cache();
        let redis = if cache.kind() == CacheKind::Redis {
            Some(matches!(
                tokio::time::timeout(TIMEOUT, cache.ping()).await,
                Ok(Ok(()))
            ))
        } else {
            None
        };
        let checks = Checks {
            database: database.into(),
            redis: redis.map(Into::into),
        };
        let down: Vec<&str> = [("the database", database), ("Redis", redis.unwrap_or(true))]
            .into_iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| name)
            .collect();
        if down.is_empty() {
            ReadyAnswer::Ready(Json(Readiness {
                status: ReadyState::Ready,
                checks,
            }))
        } else {
            ReadyAnswer::NotReady(Json(NotReady {
                code: ErrorCode::Unavailable,
                message: format!("Not ready: {} not answering.", down.join(" and ")),
                checks,
            }))
        }
    }
}

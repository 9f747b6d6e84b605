//! A blocking CRI v1 client over containerd's unix socket: generated bindings (k8s-cri),
//! tonic, and a current-thread tokio runtime; every call has a deadline so that a call
//! nobody answers fails the test (naming the call) instead of hanging it.

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Response, Status};

pub use k8s_cri::v1 as api;

/// The usual deadline of a call (a slow CI machine creates a pod in a few seconds).
pub const CALL: Duration = Duration::from_secs(60);

pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let path = socket.to_owned();
        let channel = rt
            .block_on(async {
                Endpoint::try_from("http://[::]:50051")?
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
                    .await
            })
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// One RuntimeService call with a deadline: `what` names it in the error.
    pub fn call<T, F, Fut>(&self, what: &str, deadline: Duration, f: F) -> Result<T, Status>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let fut = f(self.runtime.clone());
        match self
            .rt
            .block_on(async { tokio::time::timeout(deadline, fut).await })
        {
            Ok(r) => r.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{what}: no answer within {deadline:?}"
            ))),
        }
    }

    /// One ImageService call with the usual deadline.
    pub fn image_call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Status>
    where
        F: FnOnce(ImageServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let fut = f(self.images.clone());
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL, fut).await })
        {
            Ok(r) => r.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!("{what}: no answer"))),
        }
    }

    /// ExecSync with a CRI timeout of `timeout_s` (0: none) and a deadline 20 s past it.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<api::ExecSyncResponse, Status> {
        let req = api::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        let secs = if timeout_s > 0 {
            timeout_s as u64 + 20
        } else {
            60
        };
        self.call("ExecSync", Duration::from_secs(secs), |mut c| async move {
            c.exec_sync(req).await
        })
    }

    /// Whether the runtime says it is ready (the kubelet's first call).
    pub fn ready(&self) -> bool {
        let status = self.call("Status", Duration::from_secs(5), |mut c| async move {
            c.status(api::StatusRequest { verbose: false }).await
        });
        status.is_ok_and(|s| {
            s.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "RuntimeReady" && c.status)
            })
        })
    }
}

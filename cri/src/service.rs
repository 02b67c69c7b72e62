//! The gRPC services: thin adapters from `runtime.v1` calls to the modules that do
//! the work (on the blocking pool). Every handler returns errors; none panics.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::daemon::{blocking, Cri};
use crate::error::Error;
use crate::proto::image_service_server::ImageService;
use crate::proto::runtime_service_server::RuntimeService;
use crate::proto::*;
use crate::{container, exec, image, sandbox, stats};

/// The CRI API version this daemon speaks (the version kubelet asks about).
pub const KUBE_API_VERSION: &str = "0.1.0";

/// Both services, over one daemon context.
#[derive(Clone)]
pub struct Service {
    pub cri: Arc<Cri>,
}

type R<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> R<T> {
    Ok(Response::new(v))
}

/// Logs a failed call once, where it is answered.
fn fail(call: &str, e: Error) -> Status {
    tracing::warn!("{call}: {:?}: {}", e.code, e.msg);
    e.into()
}

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, _r: Request<VersionRequest>) -> R<VersionResponse> {
        ok(VersionResponse {
            version: KUBE_API_VERSION.into(),
            runtime_name: "capsa".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(&self, r: Request<RunPodSandboxRequest>) -> R<RunPodSandboxResponse> {
        let req = r.into_inner();
        let id = blocking(&self.cri, move |c| sandbox::run(c, req)).await.map_err(|e| fail("RunPodSandbox", e))?;
        ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    async fn stop_pod_sandbox(&self, r: Request<StopPodSandboxRequest>) -> R<StopPodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let rec = self.cri.state.sandbox(&id).map_err(|e| fail("StopPodSandbox", e))?;
        let _g = self.cri.state.op_lock(&rec.id).await;
        blocking(&self.cri, move |c| sandbox::stop(c, &c.state.sandbox(&rec.id)?))
            .await
            .map_err(|e| fail("StopPodSandbox", e))?;
        ok(StopPodSandboxResponse {})
    }

    async fn remove_pod_sandbox(&self, r: Request<RemovePodSandboxRequest>) -> R<RemovePodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        // As containerd: removing a sandbox that is not there is not an error.
        let rec = match self.cri.state.sandbox(&id) {
            Ok(r) => r,
            Err(e) if e.code == tonic::Code::NotFound => return ok(RemovePodSandboxResponse {}),
            Err(e) => return Err(fail("RemovePodSandbox", e)),
        };
        let _g = self.cri.state.op_lock(&rec.id).await;
        blocking(&self.cri, move |c| match c.state.sandbox(&rec.id) {
            Ok(r) => sandbox::remove(c, &r),
            Err(e) if e.code == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| fail("RemovePodSandbox", e))?;
        ok(RemovePodSandboxResponse {})
    }

    async fn pod_sandbox_status(&self, r: Request<PodSandboxStatusRequest>) -> R<PodSandboxStatusResponse> {
        let req = r.into_inner();
        let resp = blocking(&self.cri, move |c| sandbox::status(c, &req.pod_sandbox_id, req.verbose))
            .await
            .map_err(|e| fail("PodSandboxStatus", e))?;
        ok(resp)
    }

    async fn list_pod_sandbox(&self, r: Request<ListPodSandboxRequest>) -> R<ListPodSandboxResponse> {
        let f = r.into_inner().filter;
        let items =
            blocking(&self.cri, move |c| Ok(sandbox::list(c, f))).await.map_err(|e| fail("ListPodSandbox", e))?;
        ok(ListPodSandboxResponse { items })
    }

    async fn create_container(&self, r: Request<CreateContainerRequest>) -> R<CreateContainerResponse> {
        let req = r.into_inner();
        let sb = self.cri.state.sandbox(&req.pod_sandbox_id).map_err(|e| fail("CreateContainer", e))?;
        // Not alongside a stop or remove of its sandbox.
        let _g = self.cri.state.op_lock(&sb.id).await;
        let id =
            blocking(&self.cri, move |c| container::create(c, req)).await.map_err(|e| fail("CreateContainer", e))?;
        ok(CreateContainerResponse { container_id: id })
    }

    async fn start_container(&self, r: Request<StartContainerRequest>) -> R<StartContainerResponse> {
        let id = r.into_inner().container_id;
        let rec = self.cri.state.container(&id).map_err(|e| fail("StartContainer", e))?;
        let _g = self.cri.state.op_lock(&rec.id).await;
        blocking(&self.cri, move |c| container::start(c, &c.state.container(&rec.id)?))
            .await
            .map_err(|e| fail("StartContainer", e))?;
        ok(StartContainerResponse {})
    }

    async fn stop_container(&self, r: Request<StopContainerRequest>) -> R<StopContainerResponse> {
        let req = r.into_inner();
        let rec = self.cri.state.container(&req.container_id).map_err(|e| fail("StopContainer", e))?;
        let _g = self.cri.state.op_lock(&rec.id).await;
        blocking(&self.cri, move |c| container::stop_now(c, &c.state.container(&rec.id)?, req.timeout))
            .await
            .map_err(|e| fail("StopContainer", e))?;
        ok(StopContainerResponse {})
    }

    async fn remove_container(&self, r: Request<RemoveContainerRequest>) -> R<RemoveContainerResponse> {
        let id = r.into_inner().container_id;
        // As containerd: removing a container that is not there is not an error.
        let rec = match self.cri.state.container(&id) {
            Ok(r) => r,
            Err(e) if e.code == tonic::Code::NotFound => return ok(RemoveContainerResponse {}),
            Err(e) => return Err(fail("RemoveContainer", e)),
        };
        let _g = self.cri.state.op_lock(&rec.id).await;
        blocking(&self.cri, move |c| match c.state.container(&rec.id) {
            Ok(r) => container::remove_now(c, &r),
            Err(e) if e.code == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| fail("RemoveContainer", e))?;
        ok(RemoveContainerResponse {})
    }

    async fn list_containers(&self, r: Request<ListContainersRequest>) -> R<ListContainersResponse> {
        let f = r.into_inner().filter;
        let containers =
            blocking(&self.cri, move |c| Ok(container::list(c, f))).await.map_err(|e| fail("ListContainers", e))?;
        ok(ListContainersResponse { containers })
    }

    async fn container_status(&self, r: Request<ContainerStatusRequest>) -> R<ContainerStatusResponse> {
        let req = r.into_inner();
        let resp = blocking(&self.cri, move |c| container::status(c, &req.container_id, req.verbose))
            .await
            .map_err(|e| fail("ContainerStatus", e))?;
        ok(resp)
    }

    async fn update_container_resources(
        &self,
        r: Request<UpdateContainerResourcesRequest>,
    ) -> R<UpdateContainerResourcesResponse> {
        let req = r.into_inner();
        let rec = self.cri.state.container(&req.container_id).map_err(|e| fail("UpdateContainerResources", e))?;
        let _g = self.cri.state.op_lock(&rec.id).await;
        let res = req.linux.unwrap_or_default();
        blocking(&self.cri, move |c| container::update_resources(c, &c.state.container(&rec.id)?, &res))
            .await
            .map_err(|e| fail("UpdateContainerResources", e))?;
        ok(UpdateContainerResourcesResponse {})
    }

    async fn reopen_container_log(&self, r: Request<ReopenContainerLogRequest>) -> R<ReopenContainerLogResponse> {
        let id = r.into_inner().container_id;
        blocking(&self.cri, move |c| container::reopen_log(c, &c.state.container(&id)?))
            .await
            .map_err(|e| fail("ReopenContainerLog", e))?;
        ok(ReopenContainerLogResponse {})
    }

    async fn exec_sync(&self, r: Request<ExecSyncRequest>) -> R<ExecSyncResponse> {
        let req = r.into_inner();
        let resp = exec::exec_sync(self.cri.clone(), req.container_id, req.cmd, req.timeout)
            .await
            .map_err(|e| fail("ExecSync", e))?;
        ok(resp)
    }

    async fn exec(&self, r: Request<ExecRequest>) -> R<ExecResponse> {
        let url = crate::streaming::exec_url(&self.cri, r.into_inner()).await.map_err(|e| fail("Exec", e))?;
        ok(ExecResponse { url })
    }

    async fn attach(&self, r: Request<AttachRequest>) -> R<AttachResponse> {
        let url = crate::streaming::attach_url(&self.cri, r.into_inner()).await.map_err(|e| fail("Attach", e))?;
        ok(AttachResponse { url })
    }

    async fn port_forward(&self, r: Request<PortForwardRequest>) -> R<PortForwardResponse> {
        let url =
            crate::streaming::port_forward_url(&self.cri, r.into_inner()).await.map_err(|e| fail("PortForward", e))?;
        ok(PortForwardResponse { url })
    }

    async fn container_stats(&self, r: Request<ContainerStatsRequest>) -> R<ContainerStatsResponse> {
        let id = r.into_inner().container_id;
        let s = blocking(&self.cri, move |c| stats::container_stats(c, &id))
            .await
            .map_err(|e| fail("ContainerStats", e))?;
        ok(ContainerStatsResponse { stats: Some(s) })
    }

    async fn list_container_stats(&self, r: Request<ListContainerStatsRequest>) -> R<ListContainerStatsResponse> {
        let f = r.into_inner().filter;
        let s = blocking(&self.cri, move |c| Ok(stats::list_container_stats(c, f)))
            .await
            .map_err(|e| fail("ListContainerStats", e))?;
        ok(ListContainerStatsResponse { stats: s })
    }

    async fn pod_sandbox_stats(&self, r: Request<PodSandboxStatsRequest>) -> R<PodSandboxStatsResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let s =
            blocking(&self.cri, move |c| stats::sandbox_stats(c, &id)).await.map_err(|e| fail("PodSandboxStats", e))?;
        ok(PodSandboxStatsResponse { stats: Some(s) })
    }

    async fn list_pod_sandbox_stats(&self, r: Request<ListPodSandboxStatsRequest>) -> R<ListPodSandboxStatsResponse> {
        let f = r.into_inner().filter;
        let s = blocking(&self.cri, move |c| Ok(stats::list_sandbox_stats(c, f)))
            .await
            .map_err(|e| fail("ListPodSandboxStats", e))?;
        ok(ListPodSandboxStatsResponse { stats: s })
    }

    async fn update_runtime_config(&self, r: Request<UpdateRuntimeConfigRequest>) -> R<UpdateRuntimeConfigResponse> {
        let cidr = r.into_inner().runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        if !cidr.is_empty() {
            tracing::info!("pod CIDR: {cidr}");
            *self.cri.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()) = cidr;
        }
        ok(UpdateRuntimeConfigResponse {})
    }

    async fn status(&self, r: Request<StatusRequest>) -> R<StatusResponse> {
        let verbose = r.into_inner().verbose;
        let resp =
            blocking(&self.cri, move |c| Ok(crate::status::status(c, verbose))).await.map_err(|e| fail("Status", e))?;
        ok(resp)
    }

    async fn checkpoint_container(&self, _r: Request<CheckpointContainerRequest>) -> R<CheckpointContainerResponse> {
        Err(Status::unimplemented("CheckpointContainer is not implemented by capsa"))
    }

    type GetContainerEventsStream = Pin<Box<dyn Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

    async fn get_container_events(&self, _r: Request<GetEventsRequest>) -> R<Self::GetContainerEventsStream> {
        let rx = self.cri.events.subscribe();
        let s = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|ev| match ev {
            Ok(e) => Some(Ok(e)),
            // A subscriber that fell behind misses events (kubelet then relists).
            Err(e) => {
                tracing::warn!("GetContainerEvents: {e}");
                None
            }
        });
        ok(Box::pin(s))
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<ListMetricDescriptorsRequest>,
    ) -> R<ListMetricDescriptorsResponse> {
        Err(Status::unimplemented("ListMetricDescriptors is not implemented by capsa"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<ListPodSandboxMetricsRequest>,
    ) -> R<ListPodSandboxMetricsResponse> {
        Err(Status::unimplemented("ListPodSandboxMetrics is not implemented by capsa"))
    }

    async fn runtime_config(&self, _r: Request<RuntimeConfigRequest>) -> R<RuntimeConfigResponse> {
        ok(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration { cgroup_driver: CgroupDriver::Cgroupfs as i32 }),
        })
    }
}

#[tonic::async_trait]
impl ImageService for Service {
    async fn list_images(&self, r: Request<ListImagesRequest>) -> R<ListImagesResponse> {
        let f = r.into_inner().filter.and_then(|f| f.image).map(|i| i.image);
        let images =
            blocking(&self.cri, move |c| image::list(c, f.as_deref())).await.map_err(|e| fail("ListImages", e))?;
        ok(ListImagesResponse { images })
    }

    async fn image_status(&self, r: Request<ImageStatusRequest>) -> R<ImageStatusResponse> {
        let req = r.into_inner();
        let name = req.image.map(|i| i.image).unwrap_or_default();
        let resp = blocking(&self.cri, move |c| image::status(c, &name, req.verbose))
            .await
            .map_err(|e| fail("ImageStatus", e))?;
        ok(resp)
    }

    async fn pull_image(&self, r: Request<PullImageRequest>) -> R<PullImageResponse> {
        let req = r.into_inner();
        let name = req.image.map(|i| i.image).unwrap_or_default();
        let auth = req.auth;
        let image_ref = blocking(&self.cri, move |c| image::pull(c, &name, auth.as_ref()))
            .await
            .map_err(|e| fail("PullImage", e))?;
        ok(PullImageResponse { image_ref })
    }

    async fn remove_image(&self, r: Request<RemoveImageRequest>) -> R<RemoveImageResponse> {
        let name = r.into_inner().image.map(|i| i.image).unwrap_or_default();
        blocking(&self.cri, move |c| image::remove(c, &name)).await.map_err(|e| fail("RemoveImage", e))?;
        ok(RemoveImageResponse {})
    }

    async fn image_fs_info(&self, _r: Request<ImageFsInfoRequest>) -> R<ImageFsInfoResponse> {
        let resp = blocking(&self.cri, image::fs_info).await.map_err(|e| fail("ImageFsInfo", e))?;
        ok(resp)
    }
}

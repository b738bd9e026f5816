/** What Kubernetes injects into every pod for a Service `prefix` (dashes as `_`) at `ip`:`port`. */
export function serviceLinks(prefix: string, hostInUrl: string, ip: string, port: number, portName?: string): Record<string, string> {
  const link = `tcp://${hostInUrl}:${port}`;
  return {
    [`${prefix}_SERVICE_HOST`]: ip,
    [`${prefix}_SERVICE_PORT`]: String(port),
    ...(portName ? { [`${prefix}_SERVICE_PORT_${portName.toUpperCase()}`]: String(port) } : {}),
    [`${prefix}_PORT`]: link,
    [`${prefix}_PORT_${port}_TCP`]: link,
    [`${prefix}_PORT_${port}_TCP_PROTO`]: 'tcp',
    [`${prefix}_PORT_${port}_TCP_PORT`]: String(port),
    [`${prefix}_PORT_${port}_TCP_ADDR`]: ip,
  };
}

/** A Service `tollgate` (deploy/kubernetes/service.yaml: port 8080, named http). */
export const KUBERNETES_SERVICE_LINKS = serviceLinks('TOLLGATE', '10.96.14.7', '10.96.14.7', 8080, 'http');

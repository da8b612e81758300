export function writeDashboards(_d: string): void {}

// Captured steps on CUDA (Backend.capture): the body's ops are recorded into a CUDA graph on the device's stream
// (device.ts: relaxed capture mode, allocations from a private pool), instantiated once, and launched per replay.
// Every replay writes the same output tensor, which lives in the graph's pool until the step is disposed.
import type { CapturedStep } from '../backend.ts';
import { assert } from '../../core/errors.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { CudaDevice, DeviceGraph } from './device.ts';

/** Records `body` as a graph; a failing body ends the capture, frees what it allocated, and rethrows. */
export async function captureStep(device: CudaDevice, body: () => Promise<Tensor>): Promise<CapturedStep> {
  device.beginCapture();
  let output: Tensor;
  try {
    output = await body();
  } catch (err) {
    device.endCapture(false);
    throw err;
  }
  return new CudaGraphStep(device, device.endCapture(true)!, output);
}

class CudaGraphStep implements CapturedStep {
  private graph: DeviceGraph | undefined;

  constructor(private readonly device: CudaDevice, graph: DeviceGraph, private readonly output: Tensor) {
    this.graph = graph;
  }

  async replay(): Promise<Tensor> {
    assert(this.graph !== undefined, 'replay of a disposed captured step');
    this.device.launchGraph(this.graph);
    return this.output;
  }

  dispose(): void {
    if (!this.graph) return;
    this.device.destroyGraph(this.graph);
    this.graph = undefined;
  }
}

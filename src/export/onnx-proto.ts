/**
 * The ONNX protobuf messages the exporter writes, encoded with protobufjs (a maintained protobuf
 * runtime: encoding, varints, packed fields and 64-bit integers are its job, not ours).
 *
 * Only the messages and fields a model needs are declared, with the field numbers of onnx.proto
 * (ONNX IR version 8, the IR of opsets 17–18): ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto, TypeProto.Tensor, TensorShapeProto, OperatorSetIdProto and
 * StringStringEntryProto. Declaring the subset in JSON form keeps the wire format in one
 * reviewable table instead of a generated file; readers skip fields they do not know, and
 * test/export checks the bytes with onnxruntime and with onnxruntime-web's own generated decoder.
 */
import protobuf from 'protobufjs';

/** ONNX TensorProto.DataType codes of the dtypes vicinity exports. */
export const ONNX_DTYPE = {
  float32: 1, uint8: 2, int8: 3, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16,
} as const;
export type OnnxDType = keyof typeof ONNX_DTYPE;

/** AttributeProto.AttributeType codes. */
const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export const IR_VERSION = 8;

const repeated = (type: string, id: number) => ({ rule: 'repeated', type, id });

const SCHEMA = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 }, f: { type: 'float', id: 2 }, i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 }, t: { type: 'TensorProto', id: 5 },
            floats: repeated('float', 7), ints: repeated('int64', 8), type: { type: 'int32', id: 20 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        NodeProto: {
          fields: {
            input: repeated('string', 1), output: repeated('string', 2), name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 }, attribute: repeated('AttributeProto', 5), domain: { type: 'string', id: 7 },
          },
        },
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 }, producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 }, docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 }, opsetImport: repeated('OperatorSetIdProto', 8),
            metadataProps: repeated('StringStringEntryProto', 14),
          },
        },
        StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        GraphProto: {
          fields: {
            node: repeated('NodeProto', 1), name: { type: 'string', id: 2 }, initializer: repeated('TensorProto', 5),
            input: repeated('ValueInfoProto', 11), output: repeated('ValueInfoProto', 12),
          },
        },
        TensorProto: {
          fields: {
            dims: repeated('int64', 1), dataType: { type: 'int32', id: 2 }, name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        TensorShapeProto: {
          fields: { dim: repeated('Dimension', 1) },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dimValue', 'dimParam'] } },
              fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } },
            },
          },
        },
        TypeProto: {
          fields: { tensorType: { type: 'Tensor', id: 1 } },
          nested: { Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } } },
        },
        // ModelProto's header fields alone: decoding it skips the graph and its weights.
        ModelHeader: {
          fields: {
            producerName: { type: 'string', id: 2 }, producerVersion: { type: 'string', id: 3 },
            opsetImport: repeated('OperatorSetIdProto', 8), metadataProps: repeated('StringStringEntryProto', 14),
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(SCHEMA);
const ModelProto = root.lookupType('onnx.ModelProto');
const ModelHeader = root.lookupType('onnx.ModelHeader');

/** An attribute value: a number is an INT when integral unless `float` says otherwise. */
export type AttributeValue = number | string | number[] | { float: number } | { floats: number[] } | TensorData;

export interface TensorData {
  name?: string;
  dims: number[];
  dtype: OnnxDType;
  /** Little-endian element bytes (bool as one byte each). */
  bytes: Uint8Array;
}

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attributes?: Record<string, AttributeValue | undefined>;
}

/** A dimension: a size, or a symbolic name such as 'batch'. */
export type DimSpec = number | string;

export interface ValueInfo {
  name: string;
  dtype: OnnxDType;
  shape: DimSpec[];
}

export interface ModelSpec {
  graphName: string;
  nodes: NodeSpec[];
  initializers: TensorData[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  opset: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  metadata: Record<string, string>;
}

function tensorProto(t: TensorData): Record<string, unknown> {
  return { dims: t.dims, dataType: ONNX_DTYPE[t.dtype], name: t.name ?? '', rawData: t.bytes };
}

function attribute(name: string, value: AttributeValue): Record<string, unknown> {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: ATTRIBUTE_TYPE.INT, i: value } : { name, type: ATTRIBUTE_TYPE.FLOAT, f: value };
  }
  if (typeof value === 'string') return { name, type: ATTRIBUTE_TYPE.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: ATTRIBUTE_TYPE.INTS, ints: value };
  if ('float' in value) return { name, type: ATTRIBUTE_TYPE.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: ATTRIBUTE_TYPE.FLOATS, floats: value.floats };
  return { name, type: ATTRIBUTE_TYPE.TENSOR, t: tensorProto(value) };
}

function valueInfo(v: ValueInfo): Record<string, unknown> {
  const dim = v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name: v.name, type: { tensorType: { elemType: ONNX_DTYPE[v.dtype], shape: { dim } } } };
}

/** The serialized ModelProto. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  const message = {
    irVersion: IR_VERSION,
    producerName: spec.producerName,
    producerVersion: spec.producerVersion,
    docString: spec.docString ?? '',
    opsetImport: [{ domain: '', version: spec.opset }],
    metadataProps: Object.entries(spec.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.graphName,
      node: spec.nodes.map((n) => ({
        input: n.inputs, output: n.outputs, name: n.name, opType: n.opType, domain: '',
        attribute: Object.entries(n.attributes ?? {}).filter(([, v]) => v !== undefined)
          .map(([k, v]) => attribute(k, v as AttributeValue)),
      })),
      initializer: spec.initializers.map(tensorProto),
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
    },
  };
  const problem = ModelProto.verify(message);
  if (problem) throw new Error(`encodeModel: invalid ModelProto (${problem})`);
  return ModelProto.encode(ModelProto.fromObject(message)).finish();
}

/** The metadata_props and opset of serialized ONNX bytes (what `vicinity export` wrote). */
export function readModelHeader(bytes: Uint8Array): { opset: number; metadata: Record<string, string>; producerName: string } {
  let decoded: protobuf.Message;
  try {
    decoded = ModelHeader.decode(bytes);
  } catch (e) {
    throw new Error(`readModelHeader: not an ONNX model (${(e as Error).message})`);
  }
  const m = ModelHeader.toObject(decoded, { longs: Number }) as {
    opsetImport?: { domain?: string; version: number }[]; metadataProps?: { key: string; value: string }[]; producerName?: string;
  };
  const opset = (m.opsetImport ?? []).find((o) => !o.domain)?.version ?? 0;
  return {
    opset, producerName: m.producerName ?? '',
    metadata: Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key, p.value])),
  };
}

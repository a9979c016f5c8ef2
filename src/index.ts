/**
 * vicinity: local-attention vision networks for TypeScript, on libtorch.
 *
 *   import { randn, nn, F, optim, tidy } from 'vicinity';
 */
export { Tensor, isDType, type DType, type Device, type NestedArray, type TypedData } from './tensor/tensor.js';
export * from './tensor/creation.js';
export { scope, tidy, keep, currentScope, Scope } from './tensor/scope.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled, grad, type GradOptions } from './tensor/autograd.js';
export { memory, resetPeakMemory, emptyCache, setCpuCacheLimit, flushFinalizers, setNumThreads, getNumThreads, type MemoryInfo } from './tensor/memory.js';
export { kernelMode, setKernelMode, withKernelMode, FUSED_OPS, type KernelMode, type FusedOpName } from './ops/fused.js';
export * as F from './ops/functional.js';
export * as aten from './ops/generated/ops.gen.js';
export { native } from './native/binding.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export { Module, StateDictError, type LoadReport, type StateDict } from './nn/module.js';
export { Parameter, parameter } from './nn/parameter.js';
export {
  saveSafetensors, loadStateDictFile, readStateDictFile, loadWeights, loadPretrained, rawToTensor, tensorToRaw,
  type LoadWeightsOptions,
} from './checkpoint/tensor-io.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './checkpoint/safetensors.js';
export { readTorchCheckpoint, parseTorchCheckpoint } from './checkpoint/torch-pickle.js';
export { addSafeGlobals, getSafeGlobals, PickledObject } from './checkpoint/pickle.js';
export { extractStateDict, stripPrefix, renameKeys } from './checkpoint/state-dict-keys.js';
export { CheckpointError, type RawTensor } from './checkpoint/raw-tensor.js';
export { SmallConvNet, type SmallConvNetOptions } from './models/small-convnet.js';
export { ShapeError } from './tensor/shape-error.js';
export { HaloAttention, type HaloAttentionOptions } from './attention/halo-attention.js';
export { MultiHeadSelfAttention2d, type MultiHeadSelfAttention2dOptions } from './attention/mhsa2d.js';
export { NeighborhoodAttention2d, type NeighborhoodAttention2dOptions } from './attention/neighborhood-attention.js';
export { SASA, AttentionConvCompat, type SASAOptions, type AttentionConvCompatOptions } from './attention/sasa.js';
export { Lesa, LesaBinaryAttention, type LesaOptions, type LesaBinaryAttentionOptions } from './attention/lesa.js';
export { LsagShiftedEmbedding } from './attention/lsag-shifted-embedding.js';
export { LsagLocalAttention, LsagGlobalAttention, LsagMlp } from './attention/lsag-attention.js';
export { LsagFirstStage, LsagStage, ReduceImageSize } from './attention/lsag-stage.js';
export { LALayer, type LALayerOptions } from './attention/la-layer.js';
export { readFixture, type Fixture } from './verify/fixture.js';
export { verifyFixture, type VerifyReport } from './verify/verify-fixture.js';
export { gradcheck, assertGradcheck } from './autograd/gradcheck.js';
export { resnetFamily, ResNet, type ResNetFamilyOptions } from './models/resnet-family.js';
export { conv3x3Op, type SpatialOpFactory, type SpatialOpContext } from './models/spatial-ops.js';
export { createModel, listModels, modelInfo, UnknownModelError } from './models/registry.js';
export { countMacs } from './analysis/macs.js';
export { exportOnnx, exportOnnxFile, ONNX_OPSET, type ExportOnnxOptions, type OnnxExport } from './export/export-onnx.js';
export { readModelHeader } from './export/onnx-proto.js';
export { ExportError } from './export/trace.js';
export { summarizeModel } from './analysis/model-info.js';
export { laModels, laResNetNano } from './models/entries/la.js';
export { laLayerOp } from './models/la-ops.js';
export { lesaModels } from './models/entries/lesa.js';
export { lesaOp, staticLesaOp, lesaSelfAttentionOp } from './models/lesa-ops.js';
export { haloNet, haloNetModels, HALONET_CONFIGS } from './models/entries/halonet.js';
export { haloAttentionOp } from './models/halonet-ops.js';
export { LsagModel, type LsagModelOptions } from './models/lsag.js';
export { lsagModels, lsagConfig } from './models/entries/lsag.js';
export { sasaModels } from './models/entries/sasa.js';
export { timmModels, createTimmModel, TIMM_BYOANET_CONFIGS } from './models/entries/timm.js';
export { ByobNet, type ByoModelCfg, type ByoBlockCfg } from './models/byobnet.js';
export { sasaOp, neighborhoodOp } from './models/window-ops.js';
export { loadDataset, datasetStats, DATASET_NAMES } from './data/load-dataset.js';
export type { ImageDataset, ImageStore, DecodedImage } from './data/dataset.js';
export { DatasetError } from './data/errors.js';
export { DataLoader, type DataLoaderOptions, type LoadedBatch } from './data/loader.js';
export { createRng, permutation, type Rng } from './data/rng.js';
export { applyTransforms } from './data/transforms/pipeline.js';
export { mixBatch } from './data/transforms/mix.js';
export type { TransformSpec, MixSpec } from './data/transforms/spec.js';
export { runTraining, type TrainResult, type TrainOptions } from './train/trainer.js';
export { RECIPES, resolveRecipe, recipeFor, type Recipe } from './train/recipes.js';
export type { TrainConfig, RecipeSettings } from './train/train-config.js';
export { trainStep, trainEpoch, evaluate, softTargetCrossEntropy } from './train/classifier-loop.js';
export { trainTransform, evalTransform, mixSpec } from './train/input-pipeline.js';
export { ModelEma } from './train/ema.js';
// What the documentation names (docs/**, README.md; checked by test/docs/code-blocks.test.ts).
export type { Classifier, ModelOptions, ModelInfo, ModelEntry } from './models/registry.js';
export { haloAttentionOptionsFromReference, type HaloAttentionWeights, type HaloPadding } from './attention/halo-attention.js';
export { mhsa2dOptionsFromReference, type MultiHeadSelfAttention2dWeights, type RelPosResize } from './attention/mhsa2d.js';
export { lesaFromReference } from './attention/lesa.js';
export { standAloneSelfAttention2d, attentionConvCompat, type AttentionConvWeights, type SasaConfig } from './attention/sasa.js';
export {
  neighborhoodAttention2d, type NeighborhoodAttention2dWeights, type NeighborhoodAttention2dConfig,
} from './attention/neighborhood-attention.js';
export {
  lsagNumVariants, LSAG_VARIANTS, CIFAR_SHIFTS, IMAGENET_PADDINGS, type LsagVariant, type LsagShiftedEmbeddingOptions,
} from './attention/lsag-shifted-embedding.js';
export type { ReferenceBuilders, ReferenceModule } from './attention/reference-builders.js';
export { lsagOptions } from './models/entries/lsag.js';
export { resolveImageFolderSplit, checkImageFiles, type ImageFolderSplit, type ImageCheckReport, type CheckImageFilesOptions } from './data/image-folder.js';
export { loadImageDecoder, activeImageDecoder, decodeImage, type ImageDecoderName } from './data/image-decode.js';
export { TrainStateError } from './train/train-state.js';
export { FixtureError, bundledFixturesDir, bundledFixtureNames, resolveFixturePath } from './verify/fixture.js';
export {
  PRETRAINED_CFG_KEY, pretrainedCfgForRun, encodePretrainedCfg, decodePretrainedCfg, readCheckpointMetadata, resolvePretrainedCfg,
  createModelFromCfg, evalTransformFromCfg, type PretrainedCfg, type CfgOverrides,
} from './train/model-metadata.js';
export { captureAttention, disposeRecords, recordAttention, attentionCaptureActive, type AttentionRecord, type AttentionKind } from './attention/attention-capture.js';
export { attentionMap, laSamplingPoints, lesaGate, lsagVariantWeights, queryGrid, type QueryMap, type SamplingPoint } from './analysis/attention-maps.js';
export { gradCam, defaultCamLayer, type GradCamOptions, type GradCamResult } from './analysis/grad-cam.js';
export { explainImage, type ExplainImageOptions, type ExplainImageResult } from './analysis/explain-image.js';
export type { AnyModule, ForwardHook, ForwardInput, ForwardOutput, ForwardPreHook, RemovableHandle } from './nn/module.js';
export { applyPretrained, freezeStages, type ApplyPretrainedOptions } from './train/fine-tune.js';
export { ProcessGroup, DistributedError, type ProcessGroupOptions, type ReduceOp } from './distributed/process-group.js';
export { DistributedDataParallel, type DdpOptions } from './distributed/ddp.js';
export { DistributedSampler, type DistributedSamplerOptions } from './distributed/sampler.js';
export { readDistributedEnv, isDistributedEnv, DistributedEnvError, type DistributedEnv } from './distributed/env.js';
export { runDistributedTraining, DistributedTraining } from './train/distributed-run.js';
export type { Sampler } from './data/loader.js';
export { convertSyncBatchNorm } from './distributed/sync-batch-norm.js';

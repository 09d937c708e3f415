/*
 * The part of ONNX Runtime GenAI's C API that the infogravity adapter and its test use,
 * declared here instead of including GenAI's header (the PyPI wheel ships the library, not the
 * header). The prototypes match `src/ort_genai_c.h` of microsoft/onnxruntime-genai (read at
 * snapshot a0c04eb, 2026-08-22) and the symbols exported by `libonnxruntime-genai.so` in the
 * PyPI wheel onnxruntime-genai 0.18.0 (Linux x86-64), which this was tested against. Link with
 * -lonnxruntime-genai; at run time GenAI loads ONNX Runtime (>= 1.31) from $ORT_LIB_PATH, else
 * libonnxruntime.so.1 on the library path.
 */
#ifndef IG_OGA_SUBSET_H
#define IG_OGA_SUBSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OgaElementType: only the value used here (the enum starts undefined = 0, float32 = 1). */
typedef int OgaElementType;
#define IG_OGA_ELEMENT_FLOAT32 1

typedef struct OgaResult OgaResult; /* NULL = success; else an error to destroy */
typedef struct OgaModel OgaModel;
typedef struct OgaGeneratorParams OgaGeneratorParams;
typedef struct OgaGenerator OgaGenerator;
typedef struct OgaTensor OgaTensor;

const char *OgaResultGetError(const OgaResult *result);
void OgaDestroyResult(OgaResult *result);
void OgaShutdown(void);

OgaResult *OgaCreateModel(const char *config_path, OgaModel **out);
void OgaDestroyModel(OgaModel *model);

OgaResult *OgaCreateGeneratorParams(const OgaModel *model, OgaGeneratorParams **out);
void OgaDestroyGeneratorParams(OgaGeneratorParams *params);
OgaResult *OgaGeneratorParamsSetSearchNumber(OgaGeneratorParams *params, const char *name,
                                             double value);
OgaResult *OgaGeneratorParamsSetSearchBool(OgaGeneratorParams *params, const char *name,
                                           bool value);

OgaResult *OgaCreateGenerator(const OgaModel *model, const OgaGeneratorParams *params,
                              OgaGenerator **out);
void OgaDestroyGenerator(OgaGenerator *generator);
bool OgaGenerator_IsDone(OgaGenerator *generator);
OgaResult *OgaGenerator_AppendTokens(OgaGenerator *generator, const int32_t *input_ids,
                                     size_t input_ids_count);
OgaResult *OgaGenerator_GenerateNextToken(OgaGenerator *generator);
OgaResult *OgaGenerator_GetNextTokens(const OgaGenerator *generator, const int32_t **out,
                                      size_t *out_count);
/* A CPU copy of the last position's logits, [batch, 1, vocab] float32, owned by *out. */
OgaResult *OgaGenerator_GetLogits(OgaGenerator *generator, OgaTensor **out);
/* Replace the logits GenerateNextToken samples from (same shape; the data is copied). */
OgaResult *OgaGenerator_SetLogits(OgaGenerator *generator, OgaTensor *tensor);

OgaResult *OgaCreateTensorFromBuffer(void *data, const int64_t *shape_dims,
                                     size_t shape_dims_count, OgaElementType element_type,
                                     OgaTensor **out);
void OgaDestroyTensor(OgaTensor *tensor);
OgaResult *OgaTensorGetType(OgaTensor *tensor, OgaElementType *out);
OgaResult *OgaTensorGetShapeRank(OgaTensor *tensor, size_t *out);
OgaResult *OgaTensorGetShape(OgaTensor *tensor, int64_t *shape_dims, size_t shape_dims_count);
OgaResult *OgaTensorGetData(OgaTensor *tensor, void **out);

#ifdef __cplusplus
}
#endif

#endif /* IG_OGA_SUBSET_H */

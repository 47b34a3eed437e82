/*
 * libglcic_trt_plugin: the TensorRT plugin glcic::conv2d_nhwc (version "1") in C++, for building
 * and running engines without Python. Same op, attributes and formats as the Python Quickly
 * Deployable Plugin in kernels/trt_plugins.py (so the ONNX written by
 * `glcic-fast export-onnx --plugins triton` builds with either), with the kernels from
 * libglcic_kernels (the Triton convolution compiled ahead of time).
 *
 *   op:      (x (N, Cin, H, W) HWC, weight (9*Cin, Cout) LINEAR, bias (Cout) LINEAR) -> (N, Cout, H, W) HWC
 *            stride-1 "same" KxK convolution + bias + activation, all tensors fp32, fp16 or bf16
 *   fields:  kernel_size, dilation, activation (1 = ReLU), in_channels, out_channels (int32)
 *   tactics: the tile configs compiled into libglcic_kernels for this GPU
 *
 * Loading registers the creator with TensorRT's plugin registry (static registration), so:
 *   trtexec --onnx=glcic-plugins.onnx --stronglyTyped --staticPlugins=libglcic_trt_plugin.so ...
 *   tritonserver ... --backend-config=tensorrt,plugins=/path/libglcic_trt_plugin.so
 *   Python: ctypes.CDLL("libglcic_trt_plugin.so") before building or deserializing.
 * Do not also register the Python QDP of the same id in that process.
 */
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "NvInfer.h"
#include "glcic_kernels.h"

using namespace nvinfer1;

namespace {

constexpr char const* kPluginName = "conv2d_nhwc";
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "glcic";
constexpr int32_t kMaxTactics = 16;

struct ConvAttributes {
    int32_t kernelSize = 3;
    int32_t dilation = 1;
    int32_t activation = 1;
    int32_t inChannels = 0;
    int32_t outChannels = 0;
};

bool toGlcicType(DataType type, glcic_dtype* out) {
    switch (type) {
        case DataType::kFLOAT: *out = GLCIC_FP32; return true;
        case DataType::kHALF: *out = GLCIC_FP16; return true;
        case DataType::kBF16: *out = GLCIC_BF16; return true;
        default: return false;
    }
}

class Conv2dNhwcPlugin : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime {
public:
    explicit Conv2dNhwcPlugin(ConvAttributes const& attributes) : mAttr(attributes) { buildFields(); }

    Conv2dNhwcPlugin(Conv2dNhwcPlugin const& other) : mAttr(other.mAttr), mTactic(other.mTactic) { buildFields(); }

    ~Conv2dNhwcPlugin() override = default;

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
            case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
            case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
            case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    IPluginV3* clone() noexcept override {
        try {
            return new Conv2dNhwcPlugin(*this);
        } catch (...) {
            return nullptr;
        }
    }

    // IPluginV3OneCore
    AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out,
                            int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1 || in[0].desc.dims.nbDims != 4) return 1;
        mType = in[0].desc.type;  // the tactics offered next depend on it
        return 0;
    }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbOutputs != 1 || nbInputs != 3) return 1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& exprBuilder) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1 || inputs[0].nbDims != 4) return 1;
        outputs[0].nbDims = 4;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = exprBuilder.constant(mAttr.outChannels);
        outputs[0].d[2] = inputs[0].d[2];  // stride 1, "same" padding
        outputs[0].d[3] = inputs[0].d[3];
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1 || pos < 0 || pos > 3) return false;
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (pos == 0) {
            glcic_dtype dtype;
            return desc.format == TensorFormat::kHWC && toGlcicType(desc.type, &dtype) && countTactics(dtype) > 0;
        }
        bool const sameType = desc.type == inOut[0].desc.type;
        return sameType && desc.format == (pos == 3 ? TensorFormat::kHWC : TensorFormat::kLINEAR);
    }

    int32_t getNbOutputs() const noexcept override { return 1; }

    int32_t getNbTactics() noexcept override {
        glcic_dtype dtype;
        return toGlcicType(mType, &dtype) ? countTactics(dtype) : 0;
    }

    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override {
        glcic_dtype dtype;
        if (!toGlcicType(mType, &dtype)) return 1;
        int found[kMaxTactics];
        int n = glcic_conv2d_nhwc_tactics(dtype, mAttr.inChannels, mAttr.outChannels, mAttr.kernelSize, mAttr.dilation,
                                          mAttr.activation, glcic_current_arch(), found, kMaxTactics);
        for (int32_t i = 0; i < nbTactics && i < n && i < kMaxTactics; ++i) tactics[i] = found[i];
        return 0;
    }

    char const* getTimingCacheID() noexcept override {
        mTimingCacheId = "k" + std::to_string(mAttr.kernelSize) + "d" + std::to_string(mAttr.dilation) + "a" +
                         std::to_string(mAttr.activation) + "c" + std::to_string(mAttr.inChannels) + "x" +
                         std::to_string(mAttr.outChannels);
        return mTimingCacheId.c_str();
    }

    // IPluginV3OneRuntime
    int32_t setTactic(int32_t tactic) noexcept override {
        mTactic = tactic;
        return 0;
    }

    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
        if (nbInputs != 3 || nbOutputs != 1) return 1;
        mType = in[0].type;
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
                    void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
        glcic_dtype dtype;
        if (!toGlcicType(inputDesc[0].type, &dtype)) return 1;
        Dims const& d = inputDesc[0].dims;
        CUresult status = glcic_conv2d_nhwc(
            stream, dtype, mAttr.inChannels, mAttr.outChannels, mAttr.kernelSize, mAttr.dilation, mAttr.activation,
            mTactic, static_cast<int>(d.d[0]), static_cast<int>(d.d[2]), static_cast<int>(d.d[3]),
            reinterpret_cast<CUdeviceptr>(inputs[0]), reinterpret_cast<CUdeviceptr>(inputs[1]),
            reinterpret_cast<CUdeviceptr>(inputs[2]), reinterpret_cast<CUdeviceptr>(outputs[0]));
        return status == CUDA_SUCCESS ? 0 : 1;
    }

    IPluginV3* attachToContext(IPluginResourceContext* context) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFieldCollection; }

private:
    int32_t countTactics(glcic_dtype dtype) const {
        return glcic_conv2d_nhwc_tactics(dtype, mAttr.inChannels, mAttr.outChannels, mAttr.kernelSize, mAttr.dilation,
                                         mAttr.activation, glcic_current_arch(), nullptr, 0);
    }

    void buildFields() {
        mFields = {
            PluginField("kernel_size", &mAttr.kernelSize, PluginFieldType::kINT32, 1),
            PluginField("dilation", &mAttr.dilation, PluginFieldType::kINT32, 1),
            PluginField("activation", &mAttr.activation, PluginFieldType::kINT32, 1),
            PluginField("in_channels", &mAttr.inChannels, PluginFieldType::kINT32, 1),
            PluginField("out_channels", &mAttr.outChannels, PluginFieldType::kINT32, 1),
        };
        mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
        mFieldCollection.fields = mFields.data();
    }

    ConvAttributes mAttr;
    int32_t mTactic = 0;
    DataType mType = DataType::kHALF;
    std::vector<PluginField> mFields;
    PluginFieldCollection mFieldCollection{};
    std::string mTimingCacheId;
};

class Conv2dNhwcCreator : public IPluginCreatorV3One {
public:
    Conv2dNhwcCreator() {
        mFieldNames = {
            PluginField("kernel_size", nullptr, PluginFieldType::kINT32, 1),
            PluginField("dilation", nullptr, PluginFieldType::kINT32, 1),
            PluginField("activation", nullptr, PluginFieldType::kINT32, 1),
            PluginField("in_channels", nullptr, PluginFieldType::kINT32, 1),
            PluginField("out_channels", nullptr, PluginFieldType::kINT32, 1),
        };
        mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mFieldCollection.fields = mFieldNames.data();
    }

    AsciiChar const* getPluginName() const noexcept override { return kPluginName; }
    AsciiChar const* getPluginVersion() const noexcept override { return kPluginVersion; }
    AsciiChar const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }

    IPluginV3* createPlugin(AsciiChar const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept override {
        try {
            ConvAttributes attr;
            for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
                PluginField const& f = fc->fields[i];
                int64_t value = 0;
                if (f.data == nullptr || f.length < 1) continue;
                if (f.type == PluginFieldType::kINT32) value = *static_cast<int32_t const*>(f.data);
                else if (f.type == PluginFieldType::kINT64) value = *static_cast<int64_t const*>(f.data);
                else continue;  // e.g. plugin_namespace, which the ONNX parser may pass along
                if (std::strcmp(f.name, "kernel_size") == 0) attr.kernelSize = static_cast<int32_t>(value);
                else if (std::strcmp(f.name, "dilation") == 0) attr.dilation = static_cast<int32_t>(value);
                else if (std::strcmp(f.name, "activation") == 0) attr.activation = static_cast<int32_t>(value);
                else if (std::strcmp(f.name, "in_channels") == 0) attr.inChannels = static_cast<int32_t>(value);
                else if (std::strcmp(f.name, "out_channels") == 0) attr.outChannels = static_cast<int32_t>(value);
            }
            if (attr.inChannels <= 0 || attr.outChannels <= 0 || attr.kernelSize <= 0 || attr.dilation <= 0) return nullptr;
            return new Conv2dNhwcPlugin(attr);
        } catch (...) {
            return nullptr;
        }
    }

private:
    std::vector<PluginField> mFieldNames;
    PluginFieldCollection mFieldCollection{};
};

// Static registration when the library is loaded (dlopen / --staticPlugins / Triton's plugins=).
struct Registrar {
    Registrar() {
        static Conv2dNhwcCreator creator;
        if (IPluginRegistry* registry = getPluginRegistry()) registry->registerCreator(creator, kPluginNamespace);
    }
};
Registrar gRegistrar;

}  // namespace

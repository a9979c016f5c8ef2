#include "convert.h"

#include <ATen/ops/empty.h>
#include <ATen/core/Generator.h>
#include <ATen/core/List.h>

#include <cmath>
#include <cstring>

#include "errors.h"
#include "tensor.h"

namespace vicinity {
namespace {

struct DtypeName {
  const char* name;
  c10::ScalarType type;
};

constexpr DtypeName kDtypes[] = {
    {"float32", c10::kFloat}, {"float64", c10::kDouble}, {"bfloat16", c10::kBFloat16},
    {"float16", c10::kHalf},  {"int64", c10::kLong},     {"int32", c10::kInt},
    {"int16", c10::kShort},   {"int8", c10::kChar},      {"uint8", c10::kByte},
    {"bool", c10::kBool},
};

constexpr std::pair<const char*, c10::MemoryFormat> kMemoryFormats[] = {
    {"contiguous", c10::MemoryFormat::Contiguous},
    {"channelsLast", c10::MemoryFormat::ChannelsLast},
    {"preserve", c10::MemoryFormat::Preserve},
};

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return "boolean";
  if (v.IsArray()) return "array";
  return "object";
}

[[noreturn]] void bad_argument(Napi::Env env, const c10::Argument& argument, const Napi::Value& v) {
  throw_type(env, "argument '" + argument.name() + "' expects " + argument.type()->str() + ", got " + describe(v));
}

int64_t to_int(Napi::Env env, const Napi::Value& v, const c10::Argument& argument) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (v.IsBigInt()) {
    bool lossless = true;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw_type(env, "argument '" + argument.name() + "': BigInt does not fit in int64");
    return x;
  }
  if (!v.IsNumber()) bad_argument(env, argument, v);
  double d = v.As<Napi::Number>().DoubleValue();
  // 2^63 itself is out of range; the cast below is undefined beyond it.
  if (std::floor(d) != d || std::fabs(d) >= 9.223372036854775808e18) bad_argument(env, argument, v);
  return static_cast<int64_t>(d);
}

c10::Scalar to_scalar(Napi::Env env, const Napi::Value& v, const c10::Argument& argument) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) {
    bool lossless = true;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw_type(env, "argument '" + argument.name() + "': BigInt does not fit in int64");
    return c10::Scalar(x);
  }
  if (!v.IsNumber()) bad_argument(env, argument, v);
  double d = v.As<Napi::Number>().DoubleValue();
  // Integral JS numbers become integer Scalars, like Python ints, so int tensors stay int.
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
    return c10::Scalar(static_cast<int64_t>(d));
  }
  return c10::Scalar(d);
}

// Enum-like int arguments (ScalarType, MemoryFormat, Layout) accept their names from JS.
c10::IValue enum_from_string(Napi::Env env, const std::string& s, const c10::Argument& argument) {
  for (const auto& [name, format] : kMemoryFormats) {
    if (s == name) return c10::IValue(static_cast<int64_t>(format));
  }
  if (s == "strided") return c10::IValue(static_cast<int64_t>(c10::kStrided));
  return c10::IValue(static_cast<int64_t>(dtype_from_name(env, s)));
}

c10::IValue list_to_ivalue(Napi::Env env, const Napi::Value& v, const c10::Argument& argument,
                           const c10::TypePtr& element) {
  const auto kind = element->kind();
  const bool int_like = kind == c10::TypeKind::IntType || kind == c10::TypeKind::SymIntType;
  if (!v.IsArray()) {
    // `int[2] kernel_size=3` in a schema: a single number broadcasts to N entries.
    if ((int_like || kind == c10::TypeKind::BoolType) && (v.IsNumber() || v.IsBoolean()) && argument.N()) {
      int64_t x = to_int(env, v, argument);
      if (kind == c10::TypeKind::BoolType) return c10::IValue(std::vector<bool>(*argument.N(), x != 0));
      return c10::IValue(std::vector<int64_t>(*argument.N(), x));
    }
    bad_argument(env, argument, v);
  }
  auto array = v.As<Napi::Array>();
  const uint32_t n = array.Length();
  if (int_like) {
    std::vector<int64_t> out(n);
    for (uint32_t i = 0; i < n; ++i) out[i] = to_int(env, array.Get(i), argument);
    return c10::IValue(out);
  }
  if (kind == c10::TypeKind::FloatType) {
    std::vector<double> out(n);
    for (uint32_t i = 0; i < n; ++i) {
      auto e = array.Get(i);
      if (!e.IsNumber()) bad_argument(env, argument, e);
      out[i] = e.As<Napi::Number>().DoubleValue();
    }
    return c10::IValue(out);
  }
  if (kind == c10::TypeKind::BoolType) {
    std::vector<bool> out(n);
    for (uint32_t i = 0; i < n; ++i) out[i] = array.Get(i).ToBoolean().Value();
    return c10::IValue(out);
  }
  if (kind == c10::TypeKind::TensorType) {
    c10::List<at::Tensor> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) out.push_back(TensorHandle::unwrap(env, array.Get(i), argument.name().c_str()));
    return c10::IValue(out);
  }
  if (kind == c10::TypeKind::OptionalType &&
      element->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType) {
    c10::List<c10::optional<at::Tensor>> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      auto e = array.Get(i);
      if (e.IsNull() || e.IsUndefined()) {
        out.push_back(c10::nullopt);
      } else {
        out.push_back(TensorHandle::unwrap(env, e, argument.name().c_str()));
      }
    }
    return c10::IValue(out);
  }
  throw_type(env, "argument '" + argument.name() + "': list type " + argument.type()->str() + " is not supported");
}

c10::IValue typed_to_ivalue(Napi::Env env, const Napi::Value& v, const c10::Argument& argument,
                            const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::OptionalType:
      if (v.IsUndefined() || v.IsNull()) return c10::IValue();
      return typed_to_ivalue(env, v, argument, type->castRaw<c10::OptionalType>()->getElementType());
    case c10::TypeKind::TensorType:
      return c10::IValue(TensorHandle::unwrap(env, v, argument.name().c_str()));
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      if (v.IsString()) return enum_from_string(env, v.As<Napi::String>().Utf8Value(), argument);
      return c10::IValue(to_int(env, v, argument));
    case c10::TypeKind::FloatType:
    case c10::TypeKind::SymFloatType:
      if (!v.IsNumber()) bad_argument(env, argument, v);
      return c10::IValue(v.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      if (!v.IsBoolean()) bad_argument(env, argument, v);
      return c10::IValue(v.As<Napi::Boolean>().Value());
    case c10::TypeKind::NumberType:
      return c10::IValue(to_scalar(env, v, argument));
    case c10::TypeKind::StringType:
      if (!v.IsString()) bad_argument(env, argument, v);
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) bad_argument(env, argument, v);
      return c10::IValue(device_from_name(env, v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::ListType:
      return list_to_ivalue(env, v, argument, type->castRaw<c10::ListType>()->getElementType());
    case c10::TypeKind::GeneratorType:
      if (v.IsExternal()) return c10::IValue(*v.As<Napi::External<at::Generator>>().Data());
      break;
    default:
      break;
  }
  throw_type(env, "argument '" + argument.name() + "' of type " + type->str() + " is not supported by the binding");
}

}  // namespace

c10::ScalarType dtype_from_name(Napi::Env env, const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  throw_type(env, "unknown dtype '" + name +
                      "'; use one of float32, float64, bfloat16, float16, int64, int32, int16, int8, uint8, bool");
}

const char* dtype_name(c10::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  return c10::toString(type);
}

c10::Device device_from_name(Napi::Env env, const std::string& name) {
  try {
    return c10::Device(name);
  } catch (const c10::Error&) {
    throw_type(env, "unknown device '" + name + "'; use 'cpu', 'cuda' or 'cuda:N'");
  }
}

std::string device_name(const c10::Device& device) { return device.str(); }

c10::ScalarType readback_dtype(c10::ScalarType type) {
  return (type == c10::kBFloat16 || type == c10::kHalf) ? c10::kFloat : type;
}

Napi::Value typed_array_from(Napi::Env env, const at::Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  const size_t bytes = n * t.element_size();
  auto buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buffer.Data(), t.data_ptr(), bytes);
  switch (t.scalar_type()) {
    case c10::kFloat: return Napi::Float32Array::New(env, n, buffer, 0);
    case c10::kDouble: return Napi::Float64Array::New(env, n, buffer, 0);
    case c10::kLong: return Napi::BigInt64Array::New(env, n, buffer, 0);
    case c10::kInt: return Napi::Int32Array::New(env, n, buffer, 0);
    case c10::kShort: return Napi::Int16Array::New(env, n, buffer, 0);
    case c10::kChar: return Napi::Int8Array::New(env, n, buffer, 0);
    case c10::kByte:
    case c10::kBool: return Napi::Uint8Array::New(env, n, buffer, 0);
    default: throw_type(env, std::string("cannot read back dtype ") + c10::toString(t.scalar_type()));
  }
}

at::Tensor tensor_from_typed_array(Napi::Env env, const Napi::TypedArray& data, at::IntArrayRef shape,
                                   c10::ScalarType type) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (data.ByteLength() != bytes) {
    throw_type(env, "data holds " + std::to_string(data.ByteLength()) + " bytes but shape " +
                        c10::str(shape) + " of " + dtype_name(type) + " needs " + std::to_string(bytes));
  }
  auto* source = static_cast<uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  if (bytes) std::memcpy(t.data_ptr(), source, bytes);
  return t;
}

std::vector<int64_t> int_list(Napi::Env env, const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw_type(env, std::string(what) + " must be an array of integers");
  auto array = value.As<Napi::Array>();
  std::vector<int64_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    auto e = array.Get(i);
    if (!e.IsNumber()) throw_type(env, std::string(what) + " must be an array of integers");
    out[i] = e.As<Napi::Number>().Int64Value();
  }
  return out;
}

c10::IValue to_ivalue(Napi::Env env, const Napi::Value& value, const c10::Argument& argument) {
  // real_type keeps ScalarType/SymInt distinct from int (1.13 and 2.x alike).
  return typed_to_ivalue(env, value, argument, argument.real_type());
}

Napi::Value from_ivalue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (!t.defined()) return env.Null();
    return TensorHandle::wrap(env, t);
  }
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isScalar()) {
    auto s = v.toScalar();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    return Napi::Number::New(env, s.toDouble());
  }
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) out.Set(static_cast<uint32_t>(i), TensorHandle::wrap(env, list.get(i)));
    return out;
  }
  if (v.isIntList()) {
    auto list = v.toIntList();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(list.get(i)));
    return out;
  }
  if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    auto out = Napi::Array::New(env, elements.size());
    for (size_t i = 0; i < elements.size(); ++i) out.Set(static_cast<uint32_t>(i), from_ivalue(env, elements[i]));
    return out;
  }
  throw Napi::Error::New(env, std::string("cannot convert a result of kind ") + v.tagKind() + " to JS");
}

}  // namespace vicinity

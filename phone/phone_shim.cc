#include "phone/phone_shim.h"

#include <cstring>
#include <string>

#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

static int copy_out(const std::string &s, char *out, size_t size)
{
    if (s.size() >= size)
        return -1;
    std::memcpy(out, s.c_str(), s.size() + 1);
    return 0;
}

extern "C" phone_shim_result_t phone_shim_e164(const char *input, const char *region, char *out, size_t size)
{
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        PhoneNumber number;
        switch (util->Parse(input, region, &number)) {
        case PhoneNumberUtil::NO_PARSING_ERROR:
            break;
        case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
            return PHONE_SHIM_NO_COUNTRY;
        default:
            return PHONE_SHIM_UNPARSABLE;
        }
        if (!util->IsValidNumber(number))
            return PHONE_SHIM_INVALID;
        std::string formatted;
        util->Format(number, PhoneNumberUtil::E164, &formatted);
        return copy_out(formatted, out, size) == 0 ? PHONE_SHIM_OK : PHONE_SHIM_FAILED;
    } catch (...) {
        return PHONE_SHIM_FAILED;
    }
}

extern "C" int phone_shim_region(const char *e164, char *out, size_t size)
{
    try {
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        PhoneNumber number;
        // "ZZ" (unknown region) makes Parse accept international notation only.
        if (util->Parse(e164, "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR)
            return -1;
        std::string region;
        util->GetRegionCodeForNumber(number, &region);
        // "ZZ" is libphonenumber's unknown region; "001" marks the non-geographic +800-style codes.
        if (region == "ZZ" || region.size() != 2)
            return -1;
        return copy_out(region, out, size);
    } catch (...) {
        return -1;
    }
}

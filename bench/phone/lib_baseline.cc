// The baselines of phone_bench: libphonenumber called directly from C++, one step at a time, so the
// cost of phone_normalize can be compared with the library's own floor in the same run.
#include <cstring>
#include <string>

#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

extern "C" int baseline_parse(const char *input, const char *region)
{
    PhoneNumber number;
    return PhoneNumberUtil::GetInstance()->Parse(input, region, &number) == PhoneNumberUtil::NO_PARSING_ERROR ? 0 : -1;
}

extern "C" int baseline_parse_validate(const char *input, const char *region)
{
    const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
    PhoneNumber number;
    if (util->Parse(input, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
        return -1;
    return util->IsValidNumber(number) ? 0 : -1;
}

extern "C" int baseline_e164(const char *input, const char *region, char *out, size_t size)
{
    const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
    PhoneNumber number;
    if (util->Parse(input, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR || !util->IsValidNumber(number))
        return -1;
    std::string formatted;
    util->Format(number, PhoneNumberUtil::E164, &formatted);
    if (formatted.size() >= size)
        return -1;
    std::memcpy(out, formatted.c_str(), formatted.size() + 1);
    return 0;
}

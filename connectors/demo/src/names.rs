//! Word lists for realistic Russian CRM data of a logistics company.

pub const FIRST_NAMES_M: &[&str] = &[
    "Александр",
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Артём",
    "Илья",
    "Кирилл",
    "Михаил",
    "Никита",
    "Егор",
    "Роман",
    "Павел",
    "Владимир",
    "Игорь",
];
pub const FIRST_NAMES_F: &[&str] = &[
    "Анна",
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Екатерина",
    "Ирина",
    "Светлана",
    "Юлия",
    "Дарья",
    "Ксения",
    "Алина",
    "Виктория",
];
pub const LAST_NAMES: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
];

pub const COMPANY_FORMS: &[&str] = &["ООО", "ООО", "ООО", "АО", "ИП", "ПАО"];
pub const COMPANY_WORDS_A: &[&str] = &[
    "Северный",
    "Южный",
    "Восточный",
    "Западный",
    "Сибирский",
    "Уральский",
    "Волжский",
    "Балтийский",
    "Центральный",
    "Первый",
    "Новый",
    "Транс",
    "Гранд",
    "Альфа",
    "Техно",
    "Агро",
    "Строй",
    "Мега",
    "Быстрый",
    "Надёжный",
];
pub const COMPANY_WORDS_B: &[&str] = &[
    "Транзит",
    "Экспресс",
    "Логистик",
    "Терминал",
    "Карго",
    "Маршрут",
    "Путь",
    "Склад",
    "Поток",
    "Ресурс",
    "Импорт",
    "Снаб",
    "Продукт",
    "Металл",
    "Пласт",
    "Трейд",
];

pub const CITIES: &[(&str, &str)] = &[
    ("Москва", "Россия"),
    ("Москва", "Россия"),
    ("Санкт-Петербург", "Россия"),
    ("Новосибирск", "Россия"),
    ("Екатеринбург", "Россия"),
    ("Казань", "Россия"),
    ("Нижний Новгород", "Россия"),
    ("Самара", "Россия"),
    ("Краснодар", "Россия"),
    ("Владивосток", "Россия"),
    ("Алматы", "Казахстан"),
    ("Минск", "Беларусь"),
];

pub const CARGO: &[&str] = &[
    "Перевозка контейнера 40ft",
    "Доставка сборного груза",
    "Авиадоставка",
    "Ж/д перевозка",
    "Таможенное оформление",
    "Складское хранение",
    "Рефрижераторная перевозка",
    "Доставка негабарита",
    "Мультимодальная перевозка",
    "Экспедирование",
];

pub const ROUTES: &[&str] = &[
    "Москва — Новосибирск",
    "Шанхай — Москва",
    "Санкт-Петербург — Казань",
    "Москва — Алматы",
    "Владивосток — Екатеринбург",
    "Стамбул — Краснодар",
    "Минск — Москва",
    "Москва — Самара",
];

/// A lead source and the UTM tags its leads carry.
#[derive(Clone, Copy)]
pub struct Source {
    pub id: &'static str,
    pub name: &'static str,
    /// Relative share of leads.
    pub weight: f64,
    pub utm_source: Option<&'static str>,
    pub utm_medium: Option<&'static str>,
}

const fn source(
    id: &'static str,
    name: &'static str,
    weight: f64,
    utm: Option<(&'static str, &'static str)>,
) -> Source {
    let (utm_source, utm_medium) = match utm {
        Some((s, m)) => (Some(s), Some(m)),
        None => (None, None),
    };
    Source {
        id,
        name,
        weight,
        utm_source,
        utm_medium,
    }
}

pub const SOURCES: &[Source] = &[
    source("CALL", "Звонок", 18.0, None),
    source("EMAIL", "Электронная почта", 8.0, None),
    source("WEB", "Веб-сайт", 20.0, Some(("site", "organic"))),
    source("ADVERTISING", "Реклама", 22.0, Some(("yandex", "cpc"))),
    source("PARTNER", "Партнёры", 7.0, None),
    source("RECOMMENDATION", "По рекомендации", 9.0, None),
    source("TRADE_SHOW", "Выставка", 4.0, None),
    source("WEBFORM", "CRM-форма", 8.0, Some(("vk", "social"))),
    source(
        "UC_TELEGRAM",
        "Telegram-канал",
        4.0,
        Some(("telegram", "social")),
    ),
];

pub const CAMPAIGNS: &[&str] = &[
    "cargo_china",
    "rail_2025",
    "brand",
    "retargeting",
    "customs_promo",
    "spring_sale",
];
pub const UTM_CONTENT: &[&str] = &["banner_a", "banner_b", "text_1", "video"];
pub const UTM_TERM: &[&str] = &[
    "доставка грузов из китая",
    "контейнерные перевозки",
    "таможенный брокер",
    "жд перевозки",
];
